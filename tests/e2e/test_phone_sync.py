"""A phone's view of a running hub: find it by zeroconf, pin its certificate, sync records."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from services import free_port
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from hub.discovery.records import HUB_SERVICE, HubRecord, parse_hub
from wire.canonical import content_hash
from wire.keys import save_public_key
from wire.tokens import Role, issue

BIN = Path(sys.executable).parent


async def _find_hub(hub_id: str, timeout: float = 20.0) -> HubRecord:
    zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    found: asyncio.Queue[HubRecord] = asyncio.Queue()

    async def resolve(zeroconf, name):
        info = AsyncServiceInfo(HUB_SERVICE, name)
        if await info.async_request(zeroconf, 3000):
            found.put_nowait(parse_hub(name, info.port, dict(info.properties)))

    tasks = set()

    def on_change(zeroconf, service_type, name, state_change):  # zeroconf passes these by name
        del service_type
        if state_change is ServiceStateChange.Added:
            task = asyncio.get_running_loop().create_task(resolve(zeroconf, name))
            tasks.add(task)

    browser = AsyncServiceBrowser(zc.zeroconf, HUB_SERVICE, handlers=[on_change])
    try:
        async with asyncio.timeout(timeout):
            while True:
                record = await found.get()
                if record.hub_id == hub_id:
                    return record
    finally:
        await browser.async_cancel()
        await zc.async_close()


def _pinned(port: int, fingerprint: str) -> http.client.HTTPSConnection:
    """An HTTPS connection that trusts exactly the certificate the hub advertised."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # trust comes from the pinned fingerprint instead
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    conn.connect()
    der = conn.sock.getpeercert(binary_form=True)
    assert hashlib.sha256(der).hexdigest() == fingerprint, "certificate does not match the pin"
    return conn


def _call(conn, method, path, token, body=None):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_phone_finds_the_hub_pins_its_certificate_and_syncs(tmp_path):
    cloud = Ed25519PrivateKey.generate()
    keys = tmp_path / "keys"
    save_public_key(cloud, keys / "cloud-signing.pub.pem")
    port = free_port()
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[identity]\nhub_id = "hub-phone-01"\nkey_dir = "{keys}"\n'
        f'cloud_signing_key = "{keys}/cloud-signing.pub.pem"\n'
        f'[buffer]\npath = "{tmp_path}/buffer.sqlite3"\n'
        f'[api]\nhost = "127.0.0.1"\nport = {port}\n'
        '[discovery]\ninterfaces = ["127.0.0.1"]\n'
        "[ble]\nenabled = false\n[uplink]\nenabled = false\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECSA_HUB_")}
    hub = subprocess.Popen(
        [str(BIN / "tecsa-hub"), "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        record = asyncio.run(_find_hub("hub-phone-01"))
        assert record.port == port
        token = issue(
            cloud,
            agent_id="agent-17",
            role=Role.AGENT,
            now=datetime.now(UTC),
            lifetime=timedelta(hours=1),
            token_id="tok-1",
        )
        payload = {"visit": "household", "children_under_5": 2}
        records = [
            {
                "id": "019ac990-0000-7000-8000-0000000000aa",
                "revision": 1,
                "updated_at": "2026-11-28T08:30:00Z",
                "patient_id": "pat-42",
                "agent_id": "agent-17",
                "type": "household_visit",
                "payload": payload,
                "content_hash": content_hash(payload),
            }
        ]
        conn = _pinned(record.port, record.tls_fingerprint)
        status, info = _call(conn, "GET", "/api/v1/hub", token)
        assert (status, info["hub_id"], info["agent_id"]) == (200, "hub-phone-01", "agent-17")
        path = "/api/v1/medical-records/bulk-sync"
        status, body = _call(conn, "POST", path, token, {"records": records})
        assert status == 200
        assert body["results"][0]["outcome"] == "accepted"
        status, body = _call(conn, "POST", path, token, {"records": records})
        assert body["results"][0]["outcome"] == "duplicate"
        status, _ = _call(conn, "GET", "/api/v1/hub", "forged.token.here")
        assert status == 401
        conn.close()
    finally:
        hub.send_signal(signal.SIGTERM)
        _, stderr = hub.communicate(timeout=30)
    assert hub.returncode == 0, stderr[-2000:]
