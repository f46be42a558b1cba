"""A phone against the real daemon over TLS: plans, encounters, a device's readings, phones seen.

The hub runs with virtual BLE devices; the phone binds one of them to a patient, the device's
next readings get that patient, and the phone reads them back with GET /api/v1/readings.
"""

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
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from services import free_port
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from hub.discovery.records import HUB_SERVICE, HubRecord, parse_hub
from phone.client import HubClient
from phone.queue import new_record
from wire.keys import save_public_key
from wire.tokens import Role, issue

BIN = Path(sys.executable).parent
PEER = Path(__file__).parents[1] / "hub" / "discovery" / "phone_peer.py"
DEVICES = [f"D0:00:00:00:00:{n:02X}" for n in range(1, 7)]


async def _find_hub(hub_id: str, timeout: float = 20.0) -> HubRecord:
    zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    found: asyncio.Queue[HubRecord] = asyncio.Queue()
    tasks = set()

    async def resolve(zeroconf, name):
        info = AsyncServiceInfo(HUB_SERVICE, name)
        if await info.async_request(zeroconf, 3000):
            found.put_nowait(parse_hub(name, info.port, dict(info.properties)))

    def on_change(zeroconf, service_type, name, state_change):  # zeroconf passes these by name
        del service_type
        if state_change is ServiceStateChange.Added:
            tasks.add(asyncio.get_running_loop().create_task(resolve(zeroconf, name)))

    browser = AsyncServiceBrowser(zc.zeroconf, HUB_SERVICE, handlers=[on_change])
    try:
        async with asyncio.timeout(timeout):
            while (record := await found.get()).hub_id != hub_id:
                pass
            return record
    finally:
        await browser.async_cancel()
        await zc.async_close()


class Phone:
    """An HTTPS client that trusts exactly the certificate the hub advertised."""

    def __init__(self, record: HubRecord, token: str) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # trust comes from the pinned fingerprint instead
        self.conn = http.client.HTTPSConnection(
            "127.0.0.1", record.port, context=context, timeout=10
        )
        self.conn.connect()
        der = self.conn.sock.getpeercert(binary_form=True)
        assert hashlib.sha256(der).hexdigest() == record.tls_fingerprint, (
            "not the pinned certificate"
        )
        self.token = token

    def call(self, method, path, body=None, **query):
        if query:
            path += "?" + urllib.parse.urlencode(query)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        self.conn.request(
            method, path, body=json.dumps(body) if body is not None else None, headers=headers
        )
        response = self.conn.getresponse()
        return response.status, json.loads(response.read())


def _run(*args: str, env) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "tecsa-hub"), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


PLANS = {
    "version": 3,
    "plans": [
        {
            "id": "measles-dec",
            "title": "Measles",
            "kind": "campaign",
            "starts_at": "2026-12-01T00:00Z",
        },
        {
            "id": "other",
            "title": "Other",
            "kind": "visit",
            "starts_at": "2026-12-01T00:00Z",
            "agent_ids": ["agent-99"],
        },
    ],
}


def _plans_reach_the_phone(phone: Phone, tmp_path: Path, db: Path, env) -> None:
    """Plans loaded with the CLI while the daemon runs are served to the phone (its own only)."""
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps(PLANS), encoding="utf-8")
    imported = _run("plans", "import", str(plans), "--db", str(db), env=env)
    assert imported.returncode == 0, imported.stderr
    status, body = phone.call("GET", "/api/v1/plans/")
    assert (status, body["version"], [p["id"] for p in body["plans"]]) == (200, 3, ["measles-dec"])


def _the_phone_is_listed(db: Path, env) -> None:
    """The phone's zeroconf record was persisted by the daemon (`tecsa-hub phones`)."""
    deadline = time.monotonic() + 20
    listed: list[dict] = []
    while time.monotonic() < deadline and not any(p["agent"] == "agent-17" for p in listed):
        result = _run("phones", "--db", str(db), "--json", env=env)
        assert result.returncode == 0, result.stderr
        listed = json.loads(result.stdout)
        time.sleep(0.2)
    assert any(p["agent"] == "agent-17" and p["present"] for p in listed), listed


def _readings_of(phone: Phone, patient_id: str, hub: subprocess.Popen[str]) -> list[dict]:
    """The patient's first readings, once a device measured after the binding."""
    readings: list[dict] = []
    deadline = time.monotonic() + 60
    while not readings and time.monotonic() < deadline and hub.poll() is None:
        status, page = phone.call("GET", "/api/v1/readings", patient_id=patient_id, limit=50)
        assert status == 200, page
        readings = page["readings"]
        if not readings:
            time.sleep(0.2)
    return readings


def _a_record_alone_is_triaged(phone: Phone, hub: subprocess.Popen[str]) -> None:
    """A walk-in patient, no device: the agent's observations alone are triaged when they
    reach the hub, and the phone reads the result on GET /api/v1/triage."""
    danger = {"observations": {"resp_rate": 27, "consciousness": "V", "on_oxygen": False}}
    record = new_record(
        patient_id="pat-walk-in",
        agent_id="agent-17",
        type_="visit",
        payload=danger,
        now=datetime.now(UTC),
        rand=os.urandom(10),
    )
    status, answer = phone.call("POST", "/api/v1/medical-records/bulk-sync", {"records": [record]})
    assert status == 200, answer
    deadline = time.monotonic() + 30
    results: list = []
    while not results and time.monotonic() < deadline and hub.poll() is None:
        status, body = phone.call("GET", "/api/v1/triage", patient_id="pat-walk-in")
        assert status == 200, body
        results = body["results"]
        time.sleep(0.2)
    assert results, "the daemon did not triage the record"
    (result,) = results
    assert result["reading_ids"] == []
    assert result["news2_subscores"]["consciousness"] == 3
    assert result["news2_score"] == 6
    assert result["band"] in {"medium", "high"}  # NEWS2 medium; the model may raise it


def _the_phone_client_shows_it(record: HubRecord, token: str) -> None:
    """The reference client reads it too: `HubClient.triage` and `tecsa-phone triage`."""
    client = HubClient("127.0.0.1", record.port, fingerprint=record.tls_fingerprint, token=token)
    with client:
        (result,) = client.triage("pat-walk-in")
        assert client.triage("pat-walk-in", min_band="high") in ([], [result])
    assert result["news2_subscores"]["respiration_rate"] == 3
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECSA_PHONE_")}
    shown = subprocess.run(
        [str(BIN / "tecsa-phone"), "triage", "pat-walk-in", "--hub-id", "hub-phone-02"],
        capture_output=True,
        text=True,
        env=env | {"TECSA_PHONE_TOKEN": token},
        check=False,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "NEWS2 6  (incomplete: a lower bound)" in shown.stdout
    refused = subprocess.run(
        [str(BIN / "tecsa-phone"), "triage", "pat-walk-in", "--hub-id", "hub-phone-02"],
        capture_output=True,
        text=True,
        env=env | {"TECSA_PHONE_TOKEN": "not-a-token"},
        check=False,
        timeout=60,
    )
    assert refused.returncode == 3, refused.stderr  # the token was refused


def test_encounter_binds_a_virtual_device_and_its_readings_reach_the_phone(tmp_path):
    cloud = Ed25519PrivateKey.generate()
    keys = tmp_path / "keys"
    save_public_key(cloud, keys / "cloud-signing.pub.pem")
    port = free_port()
    db = tmp_path / "buffer.sqlite3"
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[identity]\nhub_id = "hub-phone-02"\nkey_dir = "{keys}"\n'
        f'cloud_signing_key = "{keys}/cloud-signing.pub.pem"\n'
        f'[buffer]\npath = "{db}"\n'
        f'[api]\nhost = "127.0.0.1"\nport = {port}\n'
        '[discovery]\ninterfaces = ["127.0.0.1"]\n'
        "[ble]\nidle_disconnect_s = 1.0\n[uplink]\nenabled = false\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECSA_HUB_")}
    hub = subprocess.Popen(
        [
            str(BIN / "tecsa-hub"),
            "run",
            "-c",
            str(config),
            "--virtual-devices",
            "--simulate-every",
            "0.2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    peer = subprocess.Popen(
        [sys.executable, str(PEER), "agent-17"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    try:
        record = asyncio.run(_find_hub("hub-phone-02"))
        now = datetime.now(UTC)
        token = issue(
            cloud,
            agent_id="agent-17",
            role=Role.AGENT,
            now=now,
            lifetime=timedelta(hours=1),
            token_id="tok-2",
        )
        phone = Phone(record, token)

        _plans_reach_the_phone(phone, tmp_path, db, env)

        # Bind every virtual device to the patient from a minute ago; the next readings get it.
        started = (now - timedelta(minutes=1)).isoformat()
        bound = []
        for address in DEVICES:
            status, enc = phone.call(
                "POST",
                "/api/v1/encounters",
                {"device_address": address, "patient_id": "pat-e2e", "started_at": started},
            )
            assert status == 201, enc
            bound.append(enc["id"])
        status, clash = phone.call(
            "POST", "/api/v1/encounters", {"device_address": DEVICES[0], "patient_id": "pat-other"}
        )
        assert status == 409
        assert bound[0] in clash["message"]

        readings = _readings_of(phone, "pat-e2e", hub)
        assert readings, "no reading got the patient"
        first = readings[0]["reading"]
        assert first["patient_id"] == "pat-e2e"
        assert first["encounter_id"] in bound
        assert first["device_id"] in DEVICES
        assert isinstance(readings[0]["triage"], list)

        status, ended = phone.call("DELETE", f"/api/v1/encounters/{bound[0]}")
        assert (status, ended["id"]) == (200, bound[0])
        assert ended["ended_at"] is not None
        status, _ = phone.call("DELETE", f"/api/v1/encounters/{bound[0]}")
        assert status == 409

        _a_record_alone_is_triaged(phone, hub)
        _the_phone_client_shows_it(record, token)
        _the_phone_is_listed(db, env)
        phone.conn.close()
    finally:
        peer.stdin.close()
        peer.wait(timeout=30)
        hub.send_signal(signal.SIGTERM)
        _, stderr = hub.communicate(timeout=30)
    assert hub.returncode == 0, stderr[-2000:]
