"""Commands through a real Mosquitto into a running uplink, with the phones' API answering.

A revocation list signed by the cloud key reaches the hub on down/cmd and the revoked token
gets 401 on the next request; forged, misdirected, expired, replayed, stale and oversized
commands are refused while the uplink stays connected and keeps applying good ones; the hub
reports the versions it holds in its retained up/status.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import timedelta

import httpx2 as httpx
import paho.mqtt.client as paho
import paho.mqtt.publish as paho_publish
import pytest
from commands_kit import CLOUD, NOW, OTHER, plans, revocations, signed
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hub.api.app import ApiContext, HubStatus, create_app
from hub.commands import CommandHandler, RevokedTokens, plans_handler
from hub.uplink import Backoff, UplinkConfig, UplinkKeys, UplinkService
from wire.commands import MAX_COMMAND, CommandKind
from wire.tokens import Role, issue
from wire.topics import cmd_topic, status_topic

pytestmark = pytest.mark.integration


async def eventually(cond, *, timeout=20.0, what=""):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class StatusWatcher:
    """A paho subscriber keeping the hub's latest retained up/status."""

    def __init__(self, port, hub_id):
        self.latest: dict | None = None
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self._client.on_message = self._on_message
        self._topic = status_topic(hub_id)
        self._client.on_connect = lambda c, *_: c.subscribe(self._topic, qos=1)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        self._lock = threading.Lock()

    def _on_message(self, _client, _userdata, message):
        with self._lock:
            self.latest = json.loads(message.payload)

    def close(self):
        self._client.disconnect()
        self._client.loop_stop()


class Hub:
    """An uplink with its command handler and the phones' API, as the daemon wires them."""

    def __init__(self, buffer, port):
        self.hub_id = f"t-{uuid.uuid4().hex[:16]}"
        self.revoked = RevokedTokens(buffer)
        self.revoked.refresh()
        self.commands = CommandHandler(
            hub_id=self.hub_id,
            cloud_key=CLOUD.public_key(),
            buffer=buffer,
            handlers={CommandKind.PLANS: plans_handler(buffer)},
            revoked=self.revoked,
        )
        self.port = port
        self.buffer = buffer
        self.keys = UplinkKeys(
            hub_identity=Ed25519PrivateKey.generate(),
            cloud_ingest=X25519PrivateKey.generate().public_key(),
            cloud_signing=CLOUD.public_key(),
        )
        self.app = create_app(
            ApiContext(
                hub_id=self.hub_id,
                cloud_signing_key=CLOUD.public_key(),
                revoked=self.revoked,
                status=lambda: HubStatus(backlog=0, at_capacity=False, capacity_hours_left=None),
            )
        )
        self.uplink: UplinkService | None = None
        self.task: asyncio.Task | None = None

    def start(self, protocol="3.1.1"):
        config = UplinkConfig(
            hub_id=self.hub_id,
            broker_url=f"mqtt://127.0.0.1:{self.port}",
            idle_poll_s=0.05,
            reconnect=Backoff(base=0.05, cap=0.3),
            timeout_s=3.0,
            status_interval_s=30.0,
            protocol=protocol,
        )
        self.uplink = UplinkService(
            config,
            self.buffer,
            self.keys,
            on_command=self.commands,
            status_extra=self.commands.status,
        )
        uplink = self.uplink
        self.commands.on_applied = lambda _command: uplink.refresh_status()
        self.task = asyncio.create_task(self.uplink.run())

    async def stop(self):
        assert self.uplink is not None
        assert self.task is not None
        self.uplink.request_stop()
        await asyncio.wait_for(self.task, 15)

    async def publish(self, payload: bytes):
        topic = cmd_topic(self.hub_id)
        await asyncio.to_thread(
            paho_publish.single, topic, payload, qos=1, hostname="127.0.0.1", port=self.port
        )

    def handled(self) -> int:
        return sum(self.commands.counts.values())


def _token(jti):
    return issue(
        CLOUD,
        agent_id="agent-17",
        role=Role.AGENT,
        now=NOW,
        lifetime=timedelta(hours=8),
        token_id=jti,
    )


async def _get_hub(api, token):
    return await api.get("/api/v1/hub", headers={"Authorization": f"Bearer {token}"})


async def test_a_revocation_pushed_on_down_cmd_makes_the_api_refuse_the_token(mosquitto, buffer):
    hub = Hub(buffer, mosquitto.port)
    watcher = StatusWatcher(mosquitto.port, hub.hub_id)
    hub.start()
    transport = httpx.ASGITransport(app=hub.app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as api:
            await eventually(lambda: hub.uplink.connected, what="the uplink to connect")
            lost, kept = _token("tok-lost"), _token("tok-kept")
            assert (await _get_hub(api, lost)).status_code == 200

            good = signed(revocations(2, "tok-lost"), hub_id=hub.hub_id)
            await hub.publish(good)
            await eventually(lambda: hub.commands.counts.get("applied") == 1, what="applied")
            refused = await _get_hub(api, lost)
            assert refused.status_code == 401
            assert "revoked" in refused.text
            assert (await _get_hub(api, kept)).status_code == 200

            bad = [
                signed(revocations(9), hub_id=hub.hub_id, key=OTHER),  # forged
                signed(revocations(9), hub_id="t-someone-else"),  # another hub's
                signed(
                    revocations(9),
                    hub_id=hub.hub_id,
                    now=NOW - timedelta(days=3),
                    lifetime=timedelta(days=1),
                ),  # expired
                good,  # replayed
                signed(revocations(1), hub_id=hub.hub_id),  # stale: would un-revoke tok-lost
                b"TSC\x01" + b"\x00" * MAX_COMMAND,  # oversized
            ]
            for payload in bad:
                await hub.publish(payload)
            await eventually(lambda: hub.handled() == 7, what="every bad command handled")
            assert hub.commands.counts == {"applied": 1, "invalid": 4, "duplicate": 1, "stale": 1}
            assert (await _get_hub(api, lost)).status_code == 401  # still revoked
            assert hub.uplink.connected
            assert not hub.task.done()

            # Unharmed: the next good commands still apply, and the status reports them.
            await hub.publish(signed(plans(3, "visit-1"), hub_id=hub.hub_id))
            await hub.publish(signed(revocations(4, "tok-kept"), hub_id=hub.hub_id))
            await eventually(lambda: hub.commands.counts.get("applied") == 3, what="applied")
            assert (await _get_hub(api, kept)).status_code == 401
            assert (await _get_hub(api, lost)).status_code == 200  # the new list replaced it
            assert [p.id for p in buffer.plans()] == ["visit-1"]

            def reported():
                status = watcher.latest or {}
                return status.get("commands", {}).get("revocations_version") == 4

            await eventually(reported, what="the status to report version 4")
            commands = watcher.latest["commands"]
            assert commands["plans_version"] == 3
            assert commands["revoked_tokens"] == 1
            assert watcher.latest["status"] == "online"
    finally:
        await hub.stop()
        watcher.close()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_a_command_sent_while_the_hub_is_away_arrives_when_it_reconnects(
    mosquitto, buffer, protocol
):
    hub = Hub(buffer, mosquitto.port)
    hub.start(protocol)
    await eventually(lambda: hub.uplink.connected, what="the uplink to connect")
    await hub.stop()  # the broker keeps its session (clean_session false) and the subscription
    await hub.publish(signed(revocations(5, "tok-away"), hub_id=hub.hub_id))
    hub.start(protocol)
    try:
        await eventually(lambda: hub.commands.counts.get("applied") == 1, what="applied")
        assert hub.revoked() == {"tok-away"}
    finally:
        await hub.stop()
