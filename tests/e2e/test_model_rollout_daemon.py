"""A model release goes from `tecsa-cloud models rollout` to a running hub, which reports it.

The real daemon (`tecsa-hub run`, uplink to the local Mosquitto) starts on its bundled model; the
operator publishes a new release (S3 on moto, PostgreSQL) and rolls it out to that hub; the hub
verifies it, self-tests it, swaps it in while it keeps running, and its retained up/status names
the new version. A technician's `tecsa-hub models rollback` from the shell is followed by the
running daemon too, and `tecsa-hub models list` shows what is active and what is previous.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typer.testing import CliRunner

from cloud.cli import app as cloud_app
from cloud.db import add_hub
from cloud.db.connection import connect
from hub.config import IDENTITY_KEY_FILE
from wire.keys import save_private_key, save_public_key
from wire.topics import status_topic

BIN = Path(sys.executable).parent
COMMITTED = Path(__file__).parents[2] / "cloud" / "models" / "artifacts" / "triage-v1"
HUB_ID = "hub-rollout-01"


class _Statuses:
    """The hub's retained up/status messages, as they come."""

    def __init__(self, port: int) -> None:
        self.seen: list[dict[str, object]] = []
        self._changed = threading.Condition()
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self._client.on_connect = lambda c, *_: c.subscribe(status_topic(HUB_ID), qos=1)
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _on_message(self, _client: object, _userdata: object, message: paho.MQTTMessage) -> None:
        with self._changed:
            self.seen.append(json.loads(message.payload))
            self._changed.notify_all()

    def wait_for(self, model_version: str, hub: subprocess.Popen[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(
                s.get("status") == "online" and s.get("model_version") == model_version
                for s in self.seen
            ):
                remaining = deadline - time.monotonic()
                assert remaining > 0, self.seen
                assert hub.poll() is None, "the hub exited"
                self._changed.wait(min(remaining, 0.5))

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def _next_release(tmp_path: Path, version: str) -> Path:
    """The committed model under a new version name: a release the hub has not seen."""
    artifact = tmp_path / version
    shutil.copytree(COMMITTED, artifact)
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["version"] = version
    (artifact / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return artifact


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="the committed triage artifact is missing")
def test_a_rolled_out_model_is_verified_swapped_in_and_reported_by_the_running_hub(
    tmp_path, mosquitto, db, s3_endpoint, s3_bucket, monkeypatch
):
    cloud_key = Ed25519PrivateKey.generate()
    hub_identity = Ed25519PrivateKey.generate()
    keys = tmp_path / "keys"
    save_private_key(hub_identity, keys / IDENTITY_KEY_FILE)
    save_public_key(X25519PrivateKey.generate(), keys / "cloud-ingest.pub.pem")
    save_public_key(cloud_key, keys / "cloud-signing.pub.pem")
    save_private_key(cloud_key, tmp_path / "cloud-signing.pem")
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[identity]\nhub_id = "{HUB_ID}"\nkey_dir = "{keys}"\n'
        f'cloud_signing_key = "{keys}/cloud-signing.pub.pem"\n'
        f'cloud_ingest_key = "{keys}/cloud-ingest.pub.pem"\n'
        f'[buffer]\npath = "{tmp_path}/buffer.sqlite3"\n'
        f'[models]\ndir = "{tmp_path}/models"\n'
        f'[uplink]\nbroker_url = "mqtt://127.0.0.1:{mosquitto.port}"\n'
        "[api]\nenabled = false\n[ble]\nenabled = false\n",
        encoding="utf-8",
    )
    for name, value in {
        "TECSA_CLOUD_DATABASE__URL": db,
        "TECSA_CLOUD_S3__ENDPOINT_URL": s3_endpoint,
        "TECSA_CLOUD_S3__BUCKET": s3_bucket,
        "TECSA_CLOUD_S3__ACCESS_KEY_ID": "test",
        "TECSA_CLOUD_S3__SECRET_ACCESS_KEY": "test",
        "TECSA_CLOUD_KEYS__SIGNING_KEY": str(tmp_path / "cloud-signing.pem"),
        "TECSA_CLOUD_MQTT__BROKER_URL": mosquitto.url,
    }.items():
        monkeypatch.setenv(name, value)
    with connect(db) as conn:
        add_hub(conn, HUB_ID, hub_identity.public_key())

    statuses = _Statuses(mosquitto.port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECSA_HUB_")}
    hub = subprocess.Popen(
        [str(BIN / "tecsa-hub"), "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        statuses.wait_for("triage-v1", hub)  # the bundled model, before any release
        runner = CliRunner()
        for version in ("triage-v2", "triage-v3"):
            artifact = _next_release(tmp_path, version)
            published = runner.invoke(cloud_app, ["models", "publish", str(artifact)])
            assert published.exit_code == 0, published.output
            assert json.loads(published.output)["version"] == version
            rolled = runner.invoke(cloud_app, ["models", "rollout", version, "--hub", HUB_ID])
            assert rolled.exit_code == 0, rolled.output
            statuses.wait_for(version, hub)  # verified, self-tested, swapped while running

        # a technician rolls back from the shell: the running daemon follows the store
        back = subprocess.run(
            [str(BIN / "tecsa-hub"), "models", "rollback", "-c", str(config)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert back.returncode == 0, back.stderr
        statuses.wait_for("triage-v2", hub)
    finally:
        statuses.close()
        hub.send_signal(signal.SIGTERM)
        _, stderr = hub.communicate(timeout=30)
    assert hub.returncode == 0, stderr[-2000:]
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert not [e for e in events if e.get("level") == "error"], events

    listed = subprocess.run(
        [str(BIN / "tecsa-hub"), "models", "list", "-c", str(config), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    models = {m["version"]: (m["state"], m["valid"]) for m in json.loads(listed.stdout)}
    assert models == {"triage-v2": ("active", True), "triage-v3": ("previous", True)}
