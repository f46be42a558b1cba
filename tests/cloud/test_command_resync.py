"""The cloud re-sends what a hub missed when it sees the hub's retained up/status.

Real Mosquitto and PostgreSQL (moto S3 for model releases): a hub that comes online behind on
revocations, plans or its model gets the current snapshot or release on its down/cmd, verified
as the hub would; a hub that is up to date, unknown or revoked gets nothing; the cooldown holds
per hub and kind; two ingestors that both see a status re-send once; a malformed status harms
nothing. The last test runs the real hub uplink and command handler end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import paho.mqtt.client as paho
import paho.mqtt.publish as paho_publish
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from prometheus_client import CollectorRegistry

from cloud.auth.tokens import issue_agent_token
from cloud.commands.push import publish_plans, push_revocations
from cloud.commands.sync import (
    CommandResync,
    HubReport,
    ResyncMetrics,
    StatusError,
    parse_status,
    stale_kinds,
)
from cloud.config import DatabaseSettings, MqttSettings
from cloud.db import add_hub, connect, open_pool, revoke_hub
from cloud.db.agents import revoke_tokens
from cloud.db.commands import sent_commands
from cloud.db.resync import CloudVersions, cloud_versions, push_claims
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.ports import StoragePorts
from cloud.ingest.service import Broker, Ingestor
from cloud.models.releases import ReleaseArchive, publish, record_rollout
from cloud.storage.archive import Archive
from wire.commands import CommandKind, verify_command
from wire.plans import Plan
from wire.tokens import Role
from wire.topics import cmd_topic, status_topic

pytestmark = pytest.mark.integration

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(161, 193)))
PLAN = Plan.model_validate(
    {
        "id": "polio-r2",
        "title": "Polio round 2",
        "kind": "campaign",
        "starts_at": "2026-12-01T06:00:00Z",
        "payload": {"villages": ["Kita"]},
    }
)


# --- pure core ------------------------------------------------------------------------------


def _status(hub: str, **body: object) -> tuple[str, bytes]:
    return status_topic(hub), json.dumps({"status": "online", "hub_id": hub} | body).encode()


def test_parse_status_reads_versions_and_what_the_hub_does_not_report():
    report = parse_status(
        *_status(
            "hub-a",
            commands={"revocations_version": 41, "plans_version": None},
            model_version="triage-v2",
        )
    )
    assert report == HubReport(
        hub_id="hub-a",
        online=True,
        commands_reported=True,
        revocations_version=41,
        plans_version=None,
        model_reported=True,
        model_version="triage-v2",
    )
    bare = parse_status(*_status("hub-a"))
    assert (bare.commands_reported, bare.model_reported) == (False, False)
    offline = parse_status(status_topic("hub-a"), b'{"status": "offline", "hub_id": "hub-a"}')
    assert offline.online is False


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("tecsa/v1/hubs/hub-a/up/batch", b"{}", "not a status topic"),
        ("tecsa/v1/hubs/HUB/up/status", b"{}", "invalid hub id"),
        ("tecsa/v1/hubs/hub-a/up/status", b"\xff\xfe", "not JSON"),
        ("tecsa/v1/hubs/hub-a/up/status", b"[1, 2]", "not a JSON object"),
        ("tecsa/v1/hubs/hub-a/up/status", b'{"hub_id": "hub-b"}', "names hub 'hub-b'"),
        ("tecsa/v1/hubs/hub-a/up/status", b'{"commands": 3}', "'commands' is not an object"),
        (
            "tecsa/v1/hubs/hub-a/up/status",
            b'{"commands": {"revocations_version": "41"}}',
            "not a version number",
        ),
        (
            "tecsa/v1/hubs/hub-a/up/status",
            b'{"commands": {"plans_version": true}}',
            "not a version number",
        ),
        ("tecsa/v1/hubs/hub-a/up/status", b'{"model_version": 2}', "not a string"),
        ("tecsa/v1/hubs/hub-a/up/status", b" " * (64 * 1024 + 1), "over 65536"),
    ],
)
def test_a_malformed_status_is_refused_with_its_reason(topic, payload, reason):
    with pytest.raises(StatusError, match=reason):
        parse_status(topic, payload)


def test_stale_kinds_compares_each_kind_with_the_cloud():
    cloud = CloudVersions(revocations=10, plans=7, plans_snapshot={}, model="m2")
    behind = HubReport(
        hub_id="h",
        online=True,
        commands_reported=True,
        revocations_version=9,
        plans_version=None,
        model_reported=True,
        model_version="m1",
    )
    assert stale_kinds(behind, cloud) == (
        CommandKind.REVOCATIONS,
        CommandKind.PLANS,
        CommandKind.MODEL_RELEASE,
    )
    current = HubReport(
        hub_id="h",
        online=True,
        commands_reported=True,
        revocations_version=10,
        plans_version=7,
        model_reported=True,
        model_version="m2",
    )
    assert stale_kinds(current, cloud) == ()
    refusing = HubReport(
        hub_id="h",
        online=True,
        commands_reported=True,
        revocations_version=10,
        plans_version=7,
        model_reported=True,
        model_version="m1",
        model_refused="m2",
    )  # the hub refused m2 (self-test, downgrade): sending it again would only be refused again
    assert stale_kinds(refusing, cloud) == ()
    ahead = HubReport(
        hub_id="h",
        online=True,
        commands_reported=True,
        revocations_version=12,
        plans_version=8,
        model_reported=True,
        model_version="m2",
    )  # newer than recorded: never re-sent
    assert stale_kinds(ahead, cloud) == ()
    silent = HubReport(
        hub_id="h",
        online=True,
        commands_reported=False,
        revocations_version=None,
        plans_version=None,
        model_reported=False,
        model_version=None,
    )  # reports nothing: unknown
    assert stale_kinds(silent, cloud) == ()
    nothing_sent = CloudVersions(None, None, None, None)
    assert stale_kinds(behind, nothing_sent) == ()
    no_model = HubReport(
        hub_id="h",
        online=True,
        commands_reported=True,
        revocations_version=10,
        plans_version=7,
        model_reported=True,
        model_version=None,
    )
    assert stale_kinds(no_model, cloud) == (CommandKind.MODEL_RELEASE,)


# --- against Mosquitto and PostgreSQL -------------------------------------------------------


class DownCmd:
    """A paho subscriber on every hub's down/cmd, keeping what arrives per hub."""

    def __init__(self, port: int) -> None:
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

    def wait(self, hub_id: str, count: int, timeout: float = 15.0) -> list[bytes]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.received(hub_id)) >= count, timeout)
        assert ok, f"expected {count} commands for {hub_id}, got {self.received(hub_id)}"
        return self.received(hub_id)

    def received(self, hub_id: str) -> list[bytes]:
        return self.messages.get(cmd_topic(hub_id), [])

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(db, mosquitto):
    """Hubs registered (one revoked), a revoked token, revocations and plans already pushed
    while no hub was connected, a down/cmd listener and a pool."""
    suffix = uuid.uuid4().hex[:8]
    hubs = {name: f"{name}-{suffix}" for name in ("behind", "current", "gone", "other")}
    mqtt = MqttSettings(broker_url=mosquitto.url, share_group=None)
    now = datetime.now(UTC)
    with connect(db) as conn:
        for hub_id in hubs.values():
            add_hub(conn, hub_id, Ed25519PrivateKey.generate().public_key())
        revoke_hub(conn, hubs["gone"], reason="stolen")
        issue_agent_token(
            conn, KEY, agent_id="agent-17", role=Role.AGENT, now=now, lifetime=timedelta(hours=8)
        )
        revoke_tokens(conn, now=now, agent_id="agent-17")
        revocations = push_revocations(conn, key=KEY, mqtt=mqtt, hub_id=None, now=now)
        plans = publish_plans(conn, [PLAN], key=KEY, mqtt=mqtt, hub_id=hubs["behind"], now=now)
        publish_plans(conn, [PLAN], key=KEY, mqtt=mqtt, hub_id=hubs["current"], now=now)
        current = cloud_versions(conn, hubs["current"])
    pool = open_pool(DatabaseSettings(url=db, pool_max=3))
    down = DownCmd(mosquitto.port)
    yield {
        "db": db,
        "hubs": hubs,
        "mqtt": mqtt,
        "pool": pool,
        "down": down,
        "revocations": revocations.version,
        "plans": plans.version,
        "current": current,
        "port": mosquitto.port,
    }
    down.close()
    pool.close()


def _resync(world, **kwargs) -> CommandResync:
    registry = CollectorRegistry()
    resync = CommandResync(
        world["pool"], key=KEY, mqtt=world["mqtt"], metrics=ResyncMetrics(registry), **kwargs
    )
    resync.registry = registry  # type: ignore[attr-defined]
    return resync


def _metric(resync: CommandResync, name: str, **labels: str) -> float:
    return resync.registry.get_sample_value(name, labels) or 0.0  # type: ignore[attr-defined]


def _sent(resync: CommandResync, kind: str) -> float:
    return _metric(resync, "tecsa_cloud_command_resyncs_total", kind=kind, outcome="sent")


def _verify(payload: bytes, hub_id: str):
    return verify_command(payload, cloud_key=KEY.public_key(), hub_id=hub_id, now=datetime.now(UTC))


def _kinds(db: str, hub_id: str) -> list[str]:
    with connect(db) as conn:
        return [c["kind"] for c in sent_commands(conn, hub_id)]


def test_a_hub_behind_gets_the_current_list_and_plans_once_per_cooldown(world):
    hub = world["hubs"]["behind"]
    clock = Clock()
    resync = _resync(world, clock=clock)
    status = _status(hub, commands={"revocations_version": None, "plans_version": None})

    assert set(resync.check(*status)) == {CommandKind.REVOCATIONS, CommandKind.PLANS}

    received = [_verify(p, hub) for p in world["down"].wait(hub, 2)]
    by_kind = {c.kind: c for c in received}
    revocations = by_kind[CommandKind.REVOCATIONS].revocations()
    assert revocations.version > world["revocations"]
    assert len(revocations.revoked) == 1
    plans = by_kind[CommandKind.PLANS].plans()
    assert plans.version > world["plans"]
    assert plans.plans == (PLAN,)
    assert _sent(resync, "revocations") == _sent(resync, "plans") == 1

    # The same status again (the hub is still behind, e.g. flapping): nothing new in cooldown.
    clock.now += timedelta(minutes=9)
    assert resync.check(*status) == ()
    assert _metric(resync, "tecsa_cloud_command_resyncs_total", kind="plans", outcome="cooldown")
    assert _kinds(world["db"], hub).count("revocations") == 2  # the --all push + one re-send

    # After the cooldown, it is sent again, with the versions current then.
    clock.now += timedelta(minutes=2)
    assert set(resync.check(*status)) == {CommandKind.REVOCATIONS, CommandKind.PLANS}
    world["down"].wait(hub, 4)
    with connect(world["db"]) as conn:
        claims = push_claims(conn, hub)
    assert claims["revocations"][1] == claims["plans"][1] == 2

    # Once the hub reports what it was sent, it is up to date: nothing.
    with connect(world["db"]) as conn:
        now_current = cloud_versions(conn, hub)
    clock.now += timedelta(hours=1)
    caught_up = _status(
        hub,
        commands={
            "revocations_version": now_current.revocations,
            "plans_version": now_current.plans,
        },
    )
    assert resync.check(*caught_up) == ()
    assert len(world["down"].received(hub)) == 4


def test_an_up_to_date_unknown_or_revoked_hub_gets_nothing(world):
    resync = _resync(world)
    current = world["current"]
    hubs = world["hubs"]
    up_to_date = _status(
        hubs["current"],
        commands={"revocations_version": current.revocations, "plans_version": current.plans},
    )
    assert resync.check(*up_to_date) == ()
    assert resync.check(*_status(hubs["gone"], commands={"revocations_version": 1})) == ()
    assert resync.check(*_status("never-registered", commands={})) == ()
    offline = (status_topic(hubs["behind"]), b'{"status": "offline"}')
    assert resync.check(*offline) == ()
    assert resync.check(status_topic(hubs["behind"]), b"not json") == ()

    assert _metric(resync, "tecsa_cloud_hub_statuses_total", outcome="checked") == 1
    assert _metric(resync, "tecsa_cloud_hub_statuses_total", outcome="unknown_hub") == 2
    assert _metric(resync, "tecsa_cloud_hub_statuses_total", outcome="offline") == 1
    assert _metric(resync, "tecsa_cloud_hub_statuses_total", outcome="malformed") == 1
    for hub_id in hubs.values():  # only the initial --all push (the revoked hub: not even that)
        assert _kinds(world["db"], hub_id).count("revocations") <= 1
    with connect(world["db"]) as conn:
        assert push_claims(conn, hubs["current"]) == {}
        assert push_claims(conn, hubs["gone"]) == {}
    # and the one that is behind still gets its snapshot: nothing above harmed the resync
    assert resync.check(*_status(hubs["behind"], commands={"revocations_version": 0}))


def test_a_model_different_from_the_last_rollout_is_sent_again(
    world, tmp_path, s3_endpoint, s3_bucket
):
    hub = world["hubs"]["other"]
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    archive = ReleaseArchive(client, s3_bucket)
    artifact = tmp_path / "triage-v9"
    artifact.mkdir()
    (artifact / "model_int8.tflite").write_bytes(b"int8 model bytes, not run by the cloud")
    (artifact / "manifest.json").write_text(
        json.dumps(
            {
                "version": "triage-v9",
                "feature_version": 1,
                "training_data_digest": "sha256:" + "ab" * 32,
                "self_test": {
                    "tolerance": 0.02,
                    "vectors": [{"inputs": [0.0], "probability": 0.5}],
                },
            }
        )
    )
    now = datetime.now(UTC)
    with connect(world["db"]) as conn:
        release = publish(conn, archive, artifact, KEY, now=now)
        record_rollout(conn, release.version, hub_id=hub, via="command", now=now)
    resync = _resync(world, releases=archive.get)

    assert resync.check(*_status(hub, model_version="triage-v9")) == ()
    assert resync.check(*_status(hub, model_version="triage-v8")) == (CommandKind.MODEL_RELEASE,)
    command = _verify(world["down"].wait(hub, 1)[0], hub)
    assert command.kind is CommandKind.MODEL_RELEASE
    assert command.model_release().release_bytes() == archive.get("triage-v9")
    # without a release store, the model is not re-sent (revocations still are)
    plain = _resync(world)
    other = world["hubs"]["current"]
    with connect(world["db"]) as conn:
        record_rollout(conn, release.version, hub_id=other, via="file", now=now)
    assert plain.check(*_status(other, model_version=None)) == ()


@contextlib.asynccontextmanager
async def running_ingestor(world, resync: CommandResync, s3_endpoint: str, bucket: str):
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    ingestor = Ingestor(
        broker=Broker.from_url(world["mqtt"].broker_url),
        ports=StoragePorts(world["pool"], Archive(client, bucket)),
        cloud_keys=X25519PrivateKey.generate(),
        signing_key=KEY,
        metrics=IngestMetrics(CollectorRegistry()),
        share_group="ingest",
        retry_for=0.0,
    )
    ingestor.on_status = resync.offer
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    try:
        async with asyncio.timeout(10):
            await ingestor.subscribed.wait()
        yield ingestor
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task
        resync.close()


async def _until(cond, *, timeout: float = 20.0, every: float = 0.02) -> None:
    """Poll `cond` until true (a condition, not a sleep); fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {cond}")
        await asyncio.sleep(every)


async def _wait_checked(resync: CommandResync, count: int, timeout: float = 15.0) -> None:
    await _until(
        lambda: _metric(resync, "tecsa_cloud_hub_statuses_total", outcome="checked") >= count,
        timeout=timeout,
    )
    assert await asyncio.to_thread(resync.wait_idle)


async def test_two_ingestors_seeing_a_retained_status_resend_once(world, s3_endpoint, s3_bucket):
    hub = world["hubs"]["behind"]
    behind = {"revocations_version": world["revocations"] - 1, "plans_version": world["plans"]}
    topic, payload = _status(hub, commands=behind)
    garbage_hub = world["hubs"]["current"]
    # A malformed retained status of another hub sits on the broker too.
    await asyncio.to_thread(
        paho_publish.single,
        status_topic(garbage_hub),
        b"\x00garbage",
        qos=1,
        retain=True,
        hostname="127.0.0.1",
        port=world["port"],
    )
    await asyncio.to_thread(
        paho_publish.single,
        topic,
        payload,
        qos=1,
        retain=True,
        hostname="127.0.0.1",
        port=world["port"],
    )
    first, second = _resync(world), _resync(world)
    async with (
        running_ingestor(world, first, s3_endpoint, s3_bucket) as one,
        running_ingestor(world, second, s3_endpoint, s3_bucket) as two,
    ):
        await _wait_checked(first, 1)
        await _wait_checked(second, 1)
        assert _sent(first, "revocations") + _sent(second, "revocations") == 1
        cooldowns = sum(
            _metric(r, "tecsa_cloud_command_resyncs_total", kind="revocations", outcome="cooldown")
            for r in (first, second)
        )
        assert cooldowns == 1
        assert _metric(first, "tecsa_cloud_hub_statuses_total", outcome="malformed") == 1
        assert _metric(second, "tecsa_cloud_hub_statuses_total", outcome="malformed") == 1
        command = _verify(world["down"].wait(hub, 1)[0], hub)
        assert command.kind is CommandKind.REVOCATIONS
        assert one.subscribed.is_set()
        assert two.subscribed.is_set()
    assert _kinds(world["db"], hub).count("revocations") == 2  # the --all push + one re-send
    assert len(world["down"].received(hub)) == 1


async def test_a_real_hub_coming_online_behind_catches_up_and_then_gets_nothing(
    world, tmp_path, s3_endpoint, s3_bucket
):
    """The hub's uplink and command handler as the daemon wires them, never connected before
    the pushes: its first status shows it behind, the cloud re-sends, the hub applies and
    reports the new versions, and nothing more is sent."""
    from hub.buffer import Buffer, BufferConfig  # noqa: PLC0415 - only this test runs a hub
    from hub.commands import CommandHandler, RevokedTokens, plans_handler  # noqa: PLC0415
    from hub.uplink import Backoff, UplinkConfig, UplinkKeys, UplinkService  # noqa: PLC0415

    hub_id = world["hubs"]["behind"]
    buffer = Buffer.open(BufferConfig(path=tmp_path / "buffer.sqlite3"))
    revoked = RevokedTokens(buffer)
    commands = CommandHandler(
        hub_id=hub_id,
        cloud_key=KEY.public_key(),
        buffer=buffer,
        handlers={CommandKind.PLANS: plans_handler(buffer)},
        revoked=revoked,
    )
    uplink = UplinkService(
        UplinkConfig(
            hub_id=hub_id,
            broker_url=world["mqtt"].broker_url,
            idle_poll_s=0.05,
            reconnect=Backoff(base=0.05, cap=0.3),
            timeout_s=3.0,
            status_interval_s=30.0,
        ),
        buffer,
        UplinkKeys(
            hub_identity=Ed25519PrivateKey.generate(),
            cloud_ingest=X25519PrivateKey.generate().public_key(),
            cloud_signing=KEY.public_key(),
        ),
        on_command=commands,
        status_extra=commands.status,
    )
    commands.on_applied = lambda _command: uplink.refresh_status()
    resync = _resync(world)
    try:
        async with running_ingestor(world, resync, s3_endpoint, s3_bucket):
            hub_task = asyncio.create_task(uplink.run())
            try:
                await _until(
                    lambda: (
                        None
                        not in (
                            commands.status()["commands"]["revocations_version"],
                            commands.status()["commands"]["plans_version"],
                        )
                    )
                )
                with connect(world["db"]) as conn:
                    cloud = cloud_versions(conn, hub_id)
                report = commands.status()["commands"]
                assert report["revocations_version"] == cloud.revocations > world["revocations"]
                assert report["plans_version"] == cloud.plans > world["plans"]
                assert len(revoked.refresh()) == 1

                # the status showing the new versions is checked too, and finds nothing to send
                def seen() -> bool:
                    uplink.refresh_status()
                    return _up_to_date_seen(resync)

                await _until(seen, every=0.1)
            finally:
                uplink.request_stop()
                await asyncio.wait_for(hub_task, 15)
    finally:
        await buffer.aclose()
    assert _sent(resync, "revocations") == _sent(resync, "plans") == 1
    assert _kinds(world["db"], hub_id).count("revocations") == 2  # the --all push + one re-send


def _up_to_date_seen(resync: CommandResync) -> bool:
    """A status was checked after both re-sends with no kind left to send or hold back."""
    checked = _metric(resync, "tecsa_cloud_hub_statuses_total", outcome="checked")
    held = sum(
        _metric(resync, "tecsa_cloud_command_resyncs_total", kind=k, outcome="cooldown")
        for k in ("revocations", "plans")
    )
    return resync.wait_idle(0.05) and checked > 1 + held


def test_a_broker_outage_is_counted_and_retried_after_the_cooldown(world):
    from services import free_port  # noqa: PLC0415 - the test helpers' module

    hub = world["hubs"]["behind"]
    clock = Clock()
    down = MqttSettings(broker_url=f"mqtt://127.0.0.1:{free_port()}", share_group=None)
    registry = CollectorRegistry()
    broken = CommandResync(
        world["pool"], key=KEY, mqtt=down, metrics=ResyncMetrics(registry), clock=clock
    )
    broken.registry = registry  # type: ignore[attr-defined]
    status = _status(hub, commands={"revocations_version": 0, "plans_version": world["plans"]})

    assert broken.check(*status) == ()
    assert _metric(
        broken, "tecsa_cloud_command_resyncs_total", kind="revocations", outcome="failed"
    )
    assert broken.check(*status) == ()  # claimed: not hammered while the broker is down
    assert _metric(
        broken, "tecsa_cloud_command_resyncs_total", kind="revocations", outcome="cooldown"
    )
    clock.now += timedelta(minutes=11)
    working = _resync(world, clock=clock)
    assert working.check(*status) == (CommandKind.REVOCATIONS,)
    world["down"].wait(hub, 1)
