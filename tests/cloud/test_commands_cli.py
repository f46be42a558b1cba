"""`tecsa-cloud hubs push-revocations`, `plans publish` and `agents revoke` against the test
PostgreSQL and a real Mosquitto: what reaches each hub's down/cmd verifies as the hub would."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from services import free_port
from typer.testing import CliRunner

from cloud.auth.tokens import issue_agent_token
from cloud.cli import app
from cloud.db import add_hub, connect, revoke_hub
from cloud.db.agents import revoke_tokens
from cloud.db.commands import sent_commands
from wire.commands import CommandKind, verify_command
from wire.keys import save_private_key
from wire.tokens import Role

pytestmark = pytest.mark.integration

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(129, 161)))


class Hubs:
    """A paho subscriber on every hub's down/cmd, keeping what arrives per topic."""

    def __init__(self, port):
        self.messages: dict[str, list[bytes]] = {}
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
            self.messages.setdefault(message.topic, []).append(bytes(message.payload))
            self._cond.notify_all()

    def wait(self, count, timeout=10.0):
        with self._cond:
            ok = self._cond.wait_for(
                lambda: sum(map(len, self.messages.values())) >= count, timeout
            )
        assert ok, f"expected {count} commands, got {self.messages}"

    def received(self, hub_id):
        return self.messages.get(f"tecsa/v1/hubs/{hub_id}/down/cmd", [])

    def close(self):
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def env(db, tmp_path, monkeypatch, mosquitto):
    save_private_key(KEY, tmp_path / "signing.pem")
    monkeypatch.setenv("TECSA_CLOUD_KEYS__SIGNING_KEY", str(tmp_path / "signing.pem"))
    monkeypatch.setenv("TECSA_CLOUD_DATABASE__URL", db)
    monkeypatch.setenv("TECSA_CLOUD_MQTT__BROKER_URL", mosquitto.url)
    suffix = uuid.uuid4().hex[:8]
    hub_ids = [f"hub-a-{suffix}", f"hub-b-{suffix}", f"hub-gone-{suffix}"]
    with connect(db) as conn:
        for hub_id in hub_ids:
            add_hub(conn, hub_id, Ed25519PrivateKey.generate().public_key())
        revoke_hub(conn, hub_ids[2], reason="stolen")
    hubs = Hubs(mosquitto.port)
    yield db, hub_ids, hubs
    hubs.close()


def _verify(data, hub_id):
    return verify_command(data, cloud_key=KEY.public_key(), hub_id=hub_id, now=datetime.now(UTC))


def _tokens(db, n):
    now = datetime.now(UTC)
    with connect(db) as conn:
        for i in range(n):
            issue_agent_token(
                conn,
                KEY,
                agent_id=f"agent-{i}",
                role=Role.AGENT,
                now=now,
                lifetime=timedelta(hours=12),
            )
        return revoke_tokens(conn, now=now, agent_id="agent-0")


def test_push_revocations_to_every_active_hub(env):
    db, (hub_a, hub_b, gone), hubs = env
    revoked = _tokens(db, 3)
    result = CliRunner().invoke(app, ["hubs", "push-revocations", "--all"])
    assert result.exit_code == 0, result.output
    assert f"to {hub_a}, {hub_b}" in result.stdout
    hubs.wait(2)
    assert hubs.received(gone) == []
    commands = [_verify(hubs.received(h)[0], h) for h in (hub_a, hub_b)]
    assert {c.kind for c in commands} == {CommandKind.REVOCATIONS}
    assert [[t.jti for t in c.revocations().revoked] for c in commands] == [revoked, revoked]
    assert commands[0].id != commands[1].id
    assert commands[0].version == commands[1].version
    with connect(db) as conn:
        (sent,) = sent_commands(conn, hub_a)
    assert sent["published_at"] is not None
    assert sent["version"] == commands[0].version


def test_each_push_has_a_newer_version_and_one_hub_can_be_targeted(env):
    _db, (hub_a, hub_b, gone), hubs = env
    runner = CliRunner()
    assert runner.invoke(app, ["hubs", "push-revocations", "--hub", hub_a]).exit_code == 0
    assert runner.invoke(app, ["hubs", "push-revocations", "--hub", hub_a]).exit_code == 0
    hubs.wait(2)
    first, second = (_verify(m, hub_a) for m in hubs.received(hub_a))
    assert second.version > first.version
    assert hubs.received(hub_b) == []
    unknown = runner.invoke(app, ["hubs", "push-revocations", "--hub", "hub-nope"])
    assert unknown.exit_code == 2
    assert "no hub 'hub-nope'" in unknown.stderr
    revoked_hub = runner.invoke(app, ["hubs", "push-revocations", "--hub", gone])
    assert revoked_hub.exit_code == 2
    assert "revoked" in revoked_hub.stderr
    assert runner.invoke(app, ["hubs", "push-revocations"]).exit_code == 2


def test_plans_publish_sends_a_checked_snapshot(env, tmp_path):
    _db, (hub_a, hub_b, _gone), hubs = env
    plans = [
        {
            "id": "polio-r2",
            "title": "Polio round 2",
            "kind": "campaign",
            "starts_at": "2026-12-01T06:00:00Z",
            "ends_at": "2026-12-05T18:00:00Z",
            "payload": {"villages": ["Kita", "Bafoulabé"]},
        },
        {
            "id": "visit-0042",
            "title": "ANC visit",
            "kind": "visit",
            "starts_at": "2026-12-02T08:00:00Z",
            "agent_ids": ["agent-17"],
        },
    ]
    path = tmp_path / "plans.json"
    path.write_text(json.dumps({"plans": plans}), encoding="utf-8")
    result = CliRunner().invoke(app, ["plans", "publish", str(path), "--hub", hub_b])
    assert result.exit_code == 0, result.output
    assert "2 plan(s)" in result.stdout
    hubs.wait(1)
    command = _verify(hubs.received(hub_b)[0], hub_b)
    snapshot = command.plans()
    assert [p.id for p in snapshot.plans] == ["polio-r2", "visit-0042"]
    assert snapshot.plans[0].payload == {"villages": ["Kita", "Bafoulabé"]}
    assert hubs.received(hub_a) == []


def test_a_bad_plans_file_is_named_and_nothing_is_sent(env, tmp_path):
    db, (hub_a, _b, _gone), _hubs = env
    path = tmp_path / "plans.json"
    path.write_text(
        json.dumps([{"id": "p", "title": "t", "kind": "party", "starts_at": "2026-12-01T00:00Z"}]),
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["plans", "publish", str(path), "--all"])
    assert result.exit_code == 2
    assert "plan 0: kind" in result.stderr
    with connect(db) as conn:
        assert sent_commands(conn, hub_a) == []
    path.write_text("not json", encoding="utf-8")
    assert "is not JSON" in CliRunner().invoke(app, ["plans", "publish", str(path), "--all"]).stderr


def test_agents_revoke_pushes_the_new_list_at_once(env):
    db, (hub_a, _hub_b, _gone), hubs = env
    now = datetime.now(UTC)
    with connect(db) as conn:
        issue_agent_token(
            conn,
            KEY,
            agent_id="agent-lost",
            role=Role.AGENT,
            now=now,
            lifetime=timedelta(hours=12),
        )
    result = CliRunner().invoke(app, ["agents", "revoke", "--agent", "agent-lost"])
    assert result.exit_code == 0, result.output
    assert "revoked 1 token(s)" in result.stdout
    assert "sent revocations" in result.stdout
    hubs.wait(2)
    listed = _verify(hubs.received(hub_a)[0], hub_a).revocations().revoked
    assert len(listed) == 1


def test_agents_revoke_without_a_broker_records_and_says_so(db, tmp_path, monkeypatch):
    save_private_key(KEY, tmp_path / "signing.pem")
    monkeypatch.setenv("TECSA_CLOUD_KEYS__SIGNING_KEY", str(tmp_path / "signing.pem"))
    monkeypatch.setenv("TECSA_CLOUD_DATABASE__URL", db)
    monkeypatch.setenv("TECSA_CLOUD_MQTT__BROKER_URL", f"mqtt://127.0.0.1:{free_port()}")
    now = datetime.now(UTC)
    with connect(db) as conn:
        add_hub(conn, "hub-offline", Ed25519PrivateKey.generate().public_key())
        issue_agent_token(
            conn, KEY, agent_id="agent-9", role=Role.AGENT, now=now, lifetime=timedelta(hours=1)
        )
    runner = CliRunner()
    result = runner.invoke(app, ["agents", "revoke", "--agent", "agent-9"])
    assert result.exit_code == 0, result.output
    assert "revoked 1 token(s)" in result.stdout
    assert "will go out with the next push" in result.stdout
    listed = runner.invoke(app, ["agents", "revoked", "--json"])
    assert len(json.loads(listed.stdout)) == 1
    pushed = runner.invoke(app, ["hubs", "push-revocations", "--all"])
    assert pushed.exit_code == 1
    assert "not sent" in pushed.stderr
    quiet = runner.invoke(app, ["agents", "revoke", "--agent", "agent-9", "--no-push"])
    assert quiet.exit_code == 0
    assert "push" not in quiet.stdout
