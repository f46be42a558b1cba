"""Publishing releases: signed, write-once in S3 (moto), recorded in PostgreSQL, rolled out to a
file that the hub's own `models install` accepts."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
import paho.mqtt.client as paho
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[2] / "hub" / "models"))

from tiny_tflite import expected, logistic_model

from cloud.cli import app as cloud_app
from cloud.db import add_hub
from cloud.db.connection import connect
from cloud.models.releases import (
    ArtifactError,
    ReleaseArchive,
    build_release,
    list_releases,
    publish,
    release_key,
)
from cloud.storage.errors import ArchiveConflict
from hub.cli import app as hub_app
from hub.models.holder import ModelService
from hub.models.store import ModelStore
from wire.commands import CommandKind, verify_command
from wire.keys import save_private_key, save_public_key
from wire.releases import open_release

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
WEIGHTS = [0.25, -0.5]
COMMITTED = Path(__file__).parents[3] / "cloud" / "models" / "artifacts" / "triage-v1"


def artifact_dir(root: Path, version: str, bias: float = 0.0) -> Path:
    d = root / version
    d.mkdir(parents=True)
    (d / "model_int8.tflite").write_bytes(logistic_model(WEIGHTS, bias))
    (d / "model_float.tflite").write_bytes(b"float model, not released")
    vectors = [[0.0, 0.0], [2.0, -1.0]]
    (d / "manifest.json").write_text(
        json.dumps(
            {
                "version": version,
                "feature_version": 1,
                "training_data_digest": "sha256:" + "cd" * 32,
                "metrics": {"auroc": {"model": 0.9, "news2": 0.8}, "synthetic": True},
                "normalisation": {"mean": [0, 0], "std": [1, 1]},
                "self_test": {
                    "tolerance": 0.02,
                    "vectors": [
                        {"inputs": v, "probability": expected(WEIGHTS, bias, v)} for v in vectors
                    ],
                },
            }
        )
    )
    return d


@pytest.fixture
def key():
    return Ed25519PrivateKey.generate()


@pytest.fixture
def archive(s3_endpoint, s3_bucket):
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    return ReleaseArchive(client, s3_bucket)


def test_build_release_carries_the_artifact_manifest(tmp_path, key):
    sealed = build_release(artifact_dir(tmp_path, "triage-1"), key, now=NOW)
    release = open_release(sealed, cloud_key=key.public_key())
    m = release.manifest
    assert (m.version, m.feature_spec, m.created_at) == ("triage-1", "1", NOW)
    assert m.metrics == {"auroc.model": 0.9, "auroc.news2": 0.8}
    assert release.artifact == (tmp_path / "triage-1" / "model_int8.tflite").read_bytes()
    assert m.model_manifest is not None
    assert m.model_manifest["normalisation"] == {"mean": [0, 0], "std": [1, 1]}


def test_build_release_explains_what_is_missing(tmp_path, key):
    d = artifact_dir(tmp_path, "triage-1")
    (d / "model_int8.tflite").unlink()
    with pytest.raises(ArtifactError, match="no int8 model"):
        build_release(d, key, now=NOW)
    with pytest.raises(ArtifactError, match=r"no manifest\.json"):
        build_release(tmp_path / "nowhere", key, now=NOW)
    d2 = artifact_dir(tmp_path, "triage-2")
    info = json.loads((d2 / "manifest.json").read_text())
    del info["self_test"]
    (d2 / "manifest.json").write_text(json.dumps(info))
    with pytest.raises(ArtifactError, match=r"'self_test'"):
        build_release(d2, key, now=NOW)


def test_publish_stores_once_and_records(tmp_path, key, archive, db):
    with connect(db) as conn:
        first = publish(conn, archive, artifact_dir(tmp_path, "triage-1"), key, now=NOW)
        again = publish(conn, archive, tmp_path / "triage-1", key, now=NOW.replace(hour=13))
        assert again == first
        assert first.s3_key == release_key("triage-1") == "models/triage-1/release"
        stored = archive.get("triage-1")
        assert open_release(stored, cloud_key=key.public_key()).version == "triage-1"
        assert [r.version for r in list_releases(conn)] == ["triage-1"]
        # A different model under a published version is refused; nothing changes.
        other = artifact_dir(tmp_path / "other", "triage-1", bias=1.0)
        with pytest.raises(ArtifactError, match="another model"):
            publish(conn, archive, other, key, now=NOW)
        assert archive.get("triage-1") == stored


def test_the_archive_never_overwrites_a_release(tmp_path, key, archive):
    archive.put("triage-1", build_release(artifact_dir(tmp_path, "triage-1"), key, now=NOW))
    with pytest.raises(ArchiveConflict):
        archive.put("triage-1", build_release(tmp_path / "triage-1", key, now=NOW.replace(hour=1)))


def committed_copy(root: Path, version: str) -> Path:
    """The committed triage artifact under another version (what a retrained model looks like)."""
    d = root / version
    d.mkdir(parents=True)
    for f in COMMITTED.iterdir():
        shutil.copy(f, d / f.name)
    info = json.loads((d / "manifest.json").read_text())
    (d / "manifest.json").write_text(json.dumps(info | {"version": version}))
    return d


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="the committed triage artifact is not built")
def test_publish_list_rollout_then_the_hub_installs_it(tmp_path, key, s3_endpoint, s3_bucket, db):
    key_file = tmp_path / "keys" / "signing.pem"
    save_private_key(key, key_file)
    save_public_key(key, tmp_path / "keys" / "signing.pub.pem")
    env = {
        "TECSA_CLOUD_DATABASE__URL": db,
        "TECSA_CLOUD_S3__ENDPOINT_URL": s3_endpoint,
        "TECSA_CLOUD_S3__BUCKET": s3_bucket,
        "TECSA_CLOUD_S3__ACCESS_KEY_ID": "test",
        "TECSA_CLOUD_S3__SECRET_ACCESS_KEY": "test",
        "TECSA_CLOUD_KEYS__SIGNING_KEY": str(key_file),
    }
    runner = CliRunner()
    for version in ("triage-1", "triage-2"):
        result = runner.invoke(
            cloud_app, ["models", "publish", str(committed_copy(tmp_path, version))], env=env
        )
        assert result.exit_code == 0, result.output
    listed = runner.invoke(cloud_app, ["models", "list", "--json"], env=env)
    assert [r["version"] for r in json.loads(listed.output)] == ["triage-2", "triage-1"]

    refused = runner.invoke(cloud_app, ["models", "rollout", "triage-2"], env=env)
    assert refused.exit_code == 2
    assert "exactly one of --hub ID or --all" in refused.output
    unknown = runner.invoke(cloud_app, ["models", "rollout", "nope", "--all"], env=env)
    assert "release nope is not published" in unknown.output

    hub_args = [
        "--dir",
        str(tmp_path / "hub-models"),
        "--cloud-key",
        str(tmp_path / "keys" / "signing.pub.pem"),
    ]
    for version in ("triage-1", "triage-2"):
        out = tmp_path / f"{version}.release"
        rolled = runner.invoke(
            cloud_app, ["models", "rollout", version, "--all", "--out", str(out)], env=env
        )
        assert rolled.exit_code == 0, rolled.output
        assert json.loads(rolled.output) == {"version": version, "file": str(out)}
        installed = runner.invoke(hub_app, ["models", "install", str(out), *hub_args])
        assert installed.exit_code == 0, installed.output
        assert json.loads(installed.output)["version"] == version

    listed = runner.invoke(hub_app, ["models", "list", "--json", *hub_args])
    assert [(m["version"], m["state"]) for m in json.loads(listed.output)] == [
        ("triage-2", "active"),
        ("triage-1", "previous"),
    ]
    back = runner.invoke(hub_app, ["models", "rollback", *hub_args])
    assert json.loads(back.output)["version"] == "triage-1"
    text = runner.invoke(hub_app, ["models", "list", *hub_args]).output
    assert text.splitlines()[0].startswith("previous  triage-2")
    assert text.splitlines()[1].startswith("active    triage-1")

    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT version, hub_id, via FROM model_rollouts ORDER BY id"
        ).fetchall()
    assert rows == [("triage-1", None, "file"), ("triage-2", None, "file")]


def test_hub_refuses_a_release_signed_by_another_cloud(tmp_path, key):
    out = tmp_path / "evil.release"
    out.write_bytes(build_release(artifact_dir(tmp_path, "triage-9"), key, now=NOW))
    other = Ed25519PrivateKey.generate()
    save_public_key(other, tmp_path / "other.pub.pem")
    args = ["--dir", str(tmp_path / "m"), "--cloud-key", str(tmp_path / "other.pub.pem")]
    result = CliRunner().invoke(hub_app, ["models", "install", str(out), *args])
    assert result.exit_code == 2
    assert "signature does not verify" in result.output
    assert "active model unchanged: none" in result.output


class CmdSubscriber:
    """A paho subscriber on every hub's down/cmd topic."""

    def __init__(self, port):
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_connect = lambda c, *_: c.subscribe("tecsa/v1/hubs/+/down/cmd", qos=1)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, _client, _userdata, message):
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload)))
            self._cond.notify_all()

    def wait(self, count, timeout=10.0):
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.messages) >= count, timeout)

    def close(self):
        self._client.disconnect()
        self._client.loop_stop()


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="the committed triage artifact is not built")
async def test_rollout_pushes_the_committed_model_and_hubs_activate_it(
    tmp_path, key, s3_endpoint, s3_bucket, db, mosquitto, monkeypatch
):
    key_file = tmp_path / "signing.pem"
    save_private_key(key, key_file)
    for name, value in {
        "TECSA_CLOUD_DATABASE__URL": db,
        "TECSA_CLOUD_S3__ENDPOINT_URL": s3_endpoint,
        "TECSA_CLOUD_S3__BUCKET": s3_bucket,
        "TECSA_CLOUD_S3__ACCESS_KEY_ID": "test",
        "TECSA_CLOUD_S3__SECRET_ACCESS_KEY": "test",
        "TECSA_CLOUD_KEYS__SIGNING_KEY": str(key_file),
        "TECSA_CLOUD_MQTT__BROKER_URL": mosquitto.url,
    }.items():
        monkeypatch.setenv(name, value)
    hubs = [f"hub-a-{uuid.uuid4().hex[:8]}", f"hub-b-{uuid.uuid4().hex[:8]}"]
    with connect(db) as conn:
        for hub_id in hubs:
            add_hub(conn, hub_id, Ed25519PrivateKey.generate().public_key())
    runner = CliRunner()
    published = runner.invoke(cloud_app, ["models", "publish", str(COMMITTED)])
    assert published.exit_code == 0, published.output
    version = json.loads(published.output)["version"]
    subscriber = CmdSubscriber(mosquitto.port)
    try:
        rolled = await asyncio.to_thread(
            runner.invoke, cloud_app, ["models", "rollout", version, "--all"]
        )
        assert rolled.exit_code == 0, rolled.output
        assert sorted(json.loads(rolled.output)["hubs"]) == sorted(hubs)
        subscriber.wait(2)
    finally:
        subscriber.close()
    for topic, payload in subscriber.messages:
        hub_id = topic.split("/")[3]
        command = verify_command(
            payload, cloud_key=key.public_key(), hub_id=hub_id, now=datetime.now(UTC)
        )
        assert command.kind == CommandKind.MODEL_RELEASE
        service = ModelService(ModelStore(tmp_path / hub_id, key.public_key()))
        result = await service.handle_model_release(command.data)
        assert (result.version, result.status) == (version, "activated")
        assert service.holder.version == version
    with psycopg.connect(db) as conn:
        kinds = conn.execute("SELECT kind, published_at IS NOT NULL FROM hub_commands").fetchall()
        rollouts = conn.execute("SELECT hub_id, via FROM model_rollouts").fetchall()
    assert kinds == [("model_release", True)] * 2
    assert sorted(rollouts) == sorted((h, "command") for h in hubs)
