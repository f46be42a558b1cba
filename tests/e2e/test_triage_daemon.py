"""Triage in the real daemon: a bound virtual device's readings are triaged, stored and visible.

The hub runs with virtual BLE devices and its bundled model; a phone binds the devices to a
patient; the engine triages the patient's new readings, and the result (with the model version)
shows on `GET /api/v1/readings` and in `tecsa-hub triage recent --json`.
"""

from __future__ import annotations

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

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from services import free_port

from hub.config import IDENTITY_KEY_FILE
from wire.keys import save_private_key, save_public_key
from wire.tokens import Role, issue
from wire.topics import status_topic

BIN = Path(sys.executable).parent
DEVICES = [f"D0:00:00:00:00:{n:02X}" for n in range(1, 7)]
PATIENT = "pat-triage"


class _Phone:
    """A bare HTTPS client (pinning is tested elsewhere: tests/e2e/test_phone_encounters.py)."""

    def __init__(self, port: int, token: str) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.port, self.context, self.token = port, context, token

    def call(self, method: str, path: str, body: object = None, **query: object):
        if query:
            path += "?" + urllib.parse.urlencode(query)
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
            conn.request(method, path, json.dumps(body) if body is not None else None, headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()


def _wait_for_api(phone: _Phone, hub: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and hub.poll() is None:
        try:
            phone.call("GET", "/api/v1/plans/")
        except OSError:
            time.sleep(0.2)
        else:
            return
    raise AssertionError("the hub's API never came up")


def _triaged_readings(phone: _Phone, hub: subprocess.Popen[str]) -> list[dict]:
    """The patient's readings that carry a triage result, once the engine scored some."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and hub.poll() is None:
        status, page = phone.call("GET", "/api/v1/readings", patient_id=PATIENT, limit=200)
        assert status == 200, page
        triaged = [r for r in page["readings"] if r["triage"]]
        if triaged:
            return triaged
        time.sleep(0.3)
    return []


def test_a_bound_devices_readings_are_triaged_and_visible(tmp_path):
    cloud = Ed25519PrivateKey.generate()
    keys = tmp_path / "keys"
    save_public_key(cloud, keys / "cloud-signing.pub.pem")
    port = free_port()
    db = tmp_path / "buffer.sqlite3"
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[identity]\nhub_id = "hub-triage-01"\nkey_dir = "{keys}"\n'
        f'cloud_signing_key = "{keys}/cloud-signing.pub.pem"\n'
        f'[buffer]\npath = "{db}"\n'
        f'[models]\ndir = "{tmp_path}/models"\n'
        "[triage]\ninterval_s = 0.2\nwindow_minutes = 120\n"
        f'[api]\nhost = "127.0.0.1"\nport = {port}\n'
        '[discovery]\ninterfaces = ["127.0.0.1"]\n'
        "[ble]\nidle_disconnect_s = 1.0\n[uplink]\nenabled = false\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECSA_HUB_")}
    hub = subprocess.Popen(
        [
            str(BIN / "tecsa-hub"),
            *("run", "-c", str(config)),
            *("--virtual-devices", "--simulate-every", "0.2"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        now = datetime.now(UTC)
        token = issue(
            cloud,
            agent_id="agent-3",
            role=Role.AGENT,
            now=now,
            lifetime=timedelta(hours=1),
            token_id="tok-3",
        )
        phone = _Phone(port, token)
        _wait_for_api(phone, hub)
        started = (now - timedelta(minutes=1)).isoformat()
        for address in DEVICES:
            status, enc = phone.call(
                "POST",
                "/api/v1/encounters",
                {"device_address": address, "patient_id": PATIENT, "started_at": started},
            )
            assert status == 201, enc

        triaged = _triaged_readings(phone, hub)
        assert triaged, "no reading of the bound patient was triaged"
        result = triaged[0]["triage"][0]
        assert result["patient_id"] == PATIENT
        assert result["model_version"] == "triage-v1"  # the model bundled with the hub
        assert triaged[0]["reading"]["id"] in result["reading_ids"]
        assert result["band"] in {"low", "low_medium", "medium", "high"}
        assert result["complete"] is False  # no agent observations: respiration rate unknown
        assert result["input_hash"].startswith("sha256:")

        listed = subprocess.run(
            [
                str(BIN / "tecsa-hub"),
                *("triage", "recent", "--json", "--db", str(db)),
                *("--patient", PATIENT, "--limit", "500"),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        recent = json.loads(listed.stdout)
        assert result["id"] in {r["id"] for r in recent}
        assert {r["model_version"] for r in recent} == {"triage-v1"}
    finally:
        hub.send_signal(signal.SIGTERM)
        _, stderr = hub.communicate(timeout=30)
    assert hub.returncode == 0, stderr[-2000:]
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "triage_started" in events
    assert "triage_stopped" in events
    assert "triage_pass_failed" not in events


def test_the_daemon_reports_its_model_version_in_up_status(tmp_path, mosquitto):
    keys = tmp_path / "keys"
    save_private_key(Ed25519PrivateKey.generate(), keys / IDENTITY_KEY_FILE)
    save_public_key(X25519PrivateKey.generate(), keys / "cloud-ingest.pub.pem")
    save_public_key(Ed25519PrivateKey.generate(), keys / "cloud-signing.pub.pem")
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[identity]\nhub_id = "hub-triage-02"\nkey_dir = "{keys}"\n'
        f'cloud_signing_key = "{keys}/cloud-signing.pub.pem"\n'
        f'cloud_ingest_key = "{keys}/cloud-ingest.pub.pem"\n'
        f'[buffer]\npath = "{tmp_path}/buffer.sqlite3"\n'
        f'[models]\ndir = "{tmp_path}/models"\n'
        f'[uplink]\nbroker_url = "mqtt://127.0.0.1:{mosquitto.port}"\n'
        "[api]\nenabled = false\n[ble]\nenabled = false\n",
        encoding="utf-8",
    )
    received: list[dict] = []
    watcher = paho.Client(paho.CallbackAPIVersion.VERSION2)
    watcher.on_connect = lambda c, *_: c.subscribe(status_topic("hub-triage-02"), qos=1)
    watcher.on_message = lambda _c, _u, message: received.append(json.loads(message.payload))
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.loop_start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECSA_HUB_")}
    hub = subprocess.Popen(
        [str(BIN / "tecsa-hub"), "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and hub.poll() is None:
            if any(s.get("status") == "online" for s in received):
                break
            time.sleep(0.1)
        online = [s for s in received if s.get("status") == "online"]
        assert online, received
        assert online[-1]["model_version"] == "triage-v1"
    finally:
        watcher.loop_stop()
        watcher.disconnect()
        hub.send_signal(signal.SIGTERM)
        _, stderr = hub.communicate(timeout=30)
    assert hub.returncode == 0, stderr[-2000:]
