"""The whole pipeline as separate processes, each killed mid-stream: nothing lost, nothing doubled.

`tecsa-hub run` (virtual devices) → own Mosquitto → `tecsa-cloud ingest` → PostgreSQL + moto S3.
Both processes are SIGKILLed while batches are in flight and started again; at the end PostgreSQL
holds exactly the readings the hub captured, each once, and the archive holds their batches.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import boto3
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloud.db import add_hub, connect
from wire.keys import save_private_key, save_public_key

BIN = Path(sys.executable).parent
HUB_ID = "hub-e2e-faults"


def _hub_state(db: Path) -> tuple[set[str], int]:
    if not db.exists():
        return set(), 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            ids = {r[0] for r in conn.execute("SELECT id FROM readings")}
            (delivered,) = conn.execute(
                "SELECT count(*) FROM readings WHERE delivered_at IS NOT NULL"
            ).fetchone()
    except sqlite3.Error:
        return set(), 0
    return ids, int(delivered)


def _cloud_ids(database_url: str) -> list[str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT id::text FROM readings").fetchall()]


def _wait(predicate, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Proc:
    """A command of ours, started and killed by PID."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=out)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def test_hub_and_ingestor_killed_mid_stream_lose_and_double_nothing(
    tmp_path, db, mosquitto, s3_endpoint, s3_bucket
):
    keys = tmp_path / "keys"
    hub_key, ingest, signing = (
        Ed25519PrivateKey.generate(),
        X25519PrivateKey.generate(),
        Ed25519PrivateKey.generate(),
    )
    save_private_key(hub_key, keys / "identity.ed25519.pem")
    save_private_key(ingest, keys / "ingest.pem")
    save_private_key(signing, keys / "signing.pem")
    save_public_key(ingest, keys / "cloud-ingest.pub.pem")
    save_public_key(signing, keys / "cloud-signing.pub.pem")
    with connect(db) as conn:
        add_hub(conn, HUB_ID, hub_key.public_key())

    hub_db = tmp_path / "hub" / "buffer.sqlite3"
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[identity]\nhub_id = "{HUB_ID}"\nkey_dir = "{keys}"\n'
        f'cloud_ingest_key = "{keys}/cloud-ingest.pub.pem"\n'
        f'cloud_signing_key = "{keys}/cloud-signing.pub.pem"\n'
        f'[buffer]\npath = "{hub_db}"\n'
        f'[uplink]\nbroker_url = "{mosquitto.url}"\nbatch_max_items = 20\n'
        "batch_max_age_s = 0.3\nack_timeout_s = 3.0\n"
        "[ble]\nidle_disconnect_s = 1.0\n[api]\nenabled = false\n",
        encoding="utf-8",
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TECSA_HUB_", "TECSA_CLOUD_"))}
    cloud_env = base | {
        "TECSA_CLOUD_DATABASE__URL": db,
        "TECSA_CLOUD_S3__ENDPOINT_URL": s3_endpoint,
        "TECSA_CLOUD_S3__BUCKET": s3_bucket,
        "TECSA_CLOUD_S3__ACCESS_KEY_ID": "test-key-id",
        "TECSA_CLOUD_S3__SECRET_ACCESS_KEY": "test-secret-key",
        "TECSA_CLOUD_MQTT__BROKER_URL": mosquitto.url,
        "TECSA_CLOUD_MQTT__SHARE_GROUP": "",
        "TECSA_CLOUD_KEYS__INGEST_KEY": str(keys / "ingest.pem"),
        "TECSA_CLOUD_KEYS__SIGNING_KEY": str(keys / "signing.pem"),
        "TECSA_CLOUD_INGEST_METRICS_PORT": "0",
    }
    hub_cmd = [str(BIN / "tecsa-hub"), "run", "-c", str(config), "--virtual-devices"]
    measuring = Proc([*hub_cmd, "--simulate-every", "0.05"], base, tmp_path / "hub.log")
    idle_hub = Proc(hub_cmd, base, tmp_path / "hub.log")
    ingestor = Proc([str(BIN / "tecsa-cloud"), "ingest"], cloud_env, tmp_path / "ingest.log")

    ingestor.start()
    measuring.start()
    try:
        # Hub dies while batches are in flight.
        _wait(lambda: _hub_state(hub_db)[1] >= 20, "a first delivered readings")
        measuring.kill()
        measuring.start()
        # The ingestor dies while batches are in flight.
        _wait(lambda: len(_hub_state(hub_db)[0]) >= 80, "more readings")
        ingestor.kill()
        _wait(lambda: len(_hub_state(hub_db)[0]) >= 110, "readings while the cloud is down")
        ingestor.start()
        _wait(lambda: len(_cloud_ids(db)) >= 60, "the restarted ingestor storing")
        # Stop measuring; a hub with idle devices drains the backlog.
        measuring.kill()
        idle_hub.start()

        def drained() -> bool:
            ids, delivered = _hub_state(hub_db)
            return len(ids) == delivered and set(_cloud_ids(db)) == ids

        _wait(drained, "the backlog to drain", timeout=120)
    finally:
        for proc in (measuring, idle_hub, ingestor):
            if proc.alive():
                proc.stop()
    hub_ids, delivered = _hub_state(hub_db)
    cloud = _cloud_ids(db)
    assert len(hub_ids) >= 110
    assert delivered == len(hub_ids)
    assert sorted(cloud) == sorted(hub_ids)  # every one, each once
    with psycopg.connect(db) as conn:
        batches = {str(r[0]) for r in conn.execute("SELECT batch_id FROM batches").fetchall()}
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test-key-id",
        aws_secret_access_key="test-secret-key",
    )
    listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix="raw/")["Contents"]
    archived = {o["Key"].rsplit("/", 1)[1] for o in listed}
    assert batches <= archived
