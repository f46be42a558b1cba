"""BLE figures (issue 3): indication → durable row latency, and hub RSS idle and busy.

    make bench            # or: .venv/bin/python -m bench ble

Targets: p99 <= 50 ms from a device's indication to a committed SQLite row; hub RSS <= 80 MB
idle and <= 120 MB with 20 devices connected and streaming.

The radio is bumble's in-process LocalLink: it has no air time, so the latency is the hub's own
work (bleak callback, parse, convert, group commit) plus the virtual link's, not a real radio's
connection interval (7.5-50 ms more on hardware). RSS is measured on the real `tecsa-hub run`
process; with virtual devices that process also hosts the devices' bumble stacks, so the figures
are an upper bound for the hub alone, which is also shown without any radio.

The hub loads its triage runtime (numpy, LiteRT) when triage first scores a bound patient's
readings, not at start. So the last two lines show the cost once it is loaded: one hub that
serves phones (API, discovery) with 6 virtual devices measuring, before and after a phone binds
the devices to a patient by encounters; the second line names the model the results carry and
whether the LiteRT library is mapped in the process.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SAMPLES = 400
PATIENT = "pat-bench"
RUNTIME_LIBRARIES = ("ai_edge_litert", "tflite_runtime")


async def _latency(tmp: Path) -> list[float]:
    from hub.ble.bumble_backend import VirtualRadio  # noqa: PLC0415 - keep `-m bench` start fast
    from hub.ble.central import Backends, Central  # noqa: PLC0415
    from hub.ble.profiles import default_profiles_dir, load_profiles  # noqa: PLC0415
    from hub.ble.virtual import Thermometer  # noqa: PLC0415
    from hub.buffer import Buffer, BufferConfig  # noqa: PLC0415
    from hub.config import BleSettings  # noqa: PLC0415

    buffer = Buffer.open(BufferConfig(path=tmp / "latency.sqlite3"))
    stored = asyncio.Event()
    samples: list[float] = []
    async with VirtualRadio() as radio:
        central = Central(
            profiles=load_profiles(default_profiles_dir()),
            buffer=buffer,
            settings=BleSettings(),
            backends=Backends(radio.scanner_backend, radio.client_backend),
            on_stored=lambda _r: stored.set(),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(central.run(stop))
        thermo = await radio.add(Thermometer(address="B0:00:00:00:00:01", frames=[]))
        while thermo.address not in central.connected:  # noqa: ASYNC110 - a bench, polling is fine
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # let the session finish its reads and clock sync
        for i in range(SAMPLES + 20):
            stored.clear()
            start = time.perf_counter()
            await thermo.measure(35.0 + i / 100)  # distinct: identical values in one second dedupe
            await asyncio.wait_for(stored.wait(), 5)
            if i >= 20:  # the first 20 are warm-up
                samples.append((time.perf_counter() - start) * 1000)
        stop.set()
        await task
    buffer.close()
    return samples


def _rss_of(args: list[str], config: Path, seconds: float) -> float:
    """Peak VmRSS (MB) of `tecsa-hub run <args>` sampled over `seconds`, after a 3 s start."""
    exe = str(Path(sys.executable).parent / "tecsa-hub")
    proc = subprocess.Popen(  # noqa: S603 - our own command
        [exe, "run", "-c", str(config), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(3)
        return _peak_rss(proc, seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _peak_rss(proc: subprocess.Popen[bytes], seconds: float) -> float:
    """Peak VmRSS (MB) of `proc` sampled every 0.2 s over `seconds`."""
    peak = 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end and proc.poll() is None:
        status = Path(f"/proc/{proc.pid}/status").read_text(encoding="utf-8")
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        peak = max(peak, kb / 1024)
        time.sleep(0.2)
    return peak


def _runtime_mapped(pid: int) -> bool:
    """Whether the LiteRT (or tflite-runtime) library is mapped in the process."""
    maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8")
    return any(name in maps for name in RUNTIME_LIBRARIES)


class _Phone:
    """A health agent's phone, reduced to what binding devices needs (no certificate pinning)."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def call(self, method: str, path: str, body: object = None, **query: object) -> tuple[int, Any]:
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

    def wait_for_api(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                self.call("GET", "/api/v1/plans/")
            except OSError:
                time.sleep(0.2)
            else:
                return
        raise RuntimeError("the hub's API never came up")

    def first_triage(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        """The first triage result of PATIENT's readings (waits up to 90 s)."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            status, page = self.call("GET", "/api/v1/readings", patient_id=PATIENT, limit=200)
            if status != 200:
                raise RuntimeError(f"GET /api/v1/readings answered {status}: {page}")
            for row in page["readings"]:
                if row["triage"]:
                    return dict(row["triage"][0])
            time.sleep(0.3)
        raise RuntimeError("no reading of the bound patient was triaged")


def _phones_config(tmp: Path) -> tuple[Path, Ed25519PrivateKey, int]:
    """A hub serving phones (API, discovery on 127.0.0.1; no uplink): config, cloud key, port."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PrivateKey,
    )

    from wire.keys import save_public_key  # noqa: PLC0415

    cloud = Ed25519PrivateKey.generate()
    keys = tmp / "keys"
    save_public_key(cloud, keys / "cloud-signing.pub.pem")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = tmp / "hub-phones.toml"
    config.write_text(
        f'[identity]\nhub_id = "hub-bench-phones"\nkey_dir = "{keys}"\n'
        f'cloud_signing_key = "{keys}/cloud-signing.pub.pem"\n'
        f'[buffer]\npath = "{tmp}/phones.sqlite3"\n[models]\ndir = "{tmp}/models"\n'
        "[triage]\ninterval_s = 0.5\nwindow_minutes = 120\n"
        f'[api]\nhost = "127.0.0.1"\nport = {port}\n[discovery]\ninterfaces = ["127.0.0.1"]\n'
        "[uplink]\nenabled = false\n",
        encoding="utf-8",
    )
    return config, cloud, port


def _rss_before_and_after_binding(
    config: Path, cloud: Ed25519PrivateKey, port: int, seconds: float
) -> tuple[float, float, str, bool]:
    """Peak RSS of a hub serving phones, idle then triaging a bound patient; model, mapped."""
    from wire.tokens import Role, issue  # noqa: PLC0415

    exe = str(Path(sys.executable).parent / "tecsa-hub")
    args = ["--virtual-devices", "--device-count", "6", "--simulate-every", "0.2"]
    proc = subprocess.Popen(  # noqa: S603 - our own command
        [exe, "run", "-c", str(config), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        now = datetime.now(UTC)
        token = issue(
            cloud,
            agent_id="agent-bench",
            role=Role.AGENT,
            now=now,
            lifetime=timedelta(hours=1),
            token_id="tok-bench",  # noqa: S106 - a token's id, not a secret
        )
        phone = _Phone(port, token)
        phone.wait_for_api(proc)
        time.sleep(3)  # as _rss_of: let the devices connect and start measuring
        before = _peak_rss(proc, seconds)
        if _runtime_mapped(proc.pid):
            raise RuntimeError("the triage runtime is loaded before any patient is bound")
        started = (now - timedelta(minutes=1)).isoformat()
        for n in range(1, 7):
            status, answer = phone.call(
                "POST",
                "/api/v1/encounters",
                {
                    "device_address": f"D0:00:00:00:00:{n:02X}",
                    "patient_id": PATIENT,
                    "started_at": started,
                },
            )
            if status != 201:
                raise RuntimeError(f"POST /api/v1/encounters answered {status}: {answer}")
        result = phone.first_triage(proc)
        after = _peak_rss(proc, seconds)
        return before, after, str(result["model_version"]), _runtime_mapped(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    """Print latency percentiles and RSS figures."""
    from hub.logging import configure_logging  # noqa: PLC0415

    configure_logging(level="WARNING")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        samples = asyncio.run(_latency(tmp))
        q = statistics.quantiles(samples, n=100)
        print(f"indication -> durable row, {len(samples)} samples over the virtual radio:")
        print(
            f"  p50 {q[49]:6.2f} ms   p99 {q[98]:6.2f} ms   max {max(samples):6.2f} ms"
            "   target p99 <= 50"
        )
        config = tmp / "hub.toml"
        config.write_text(
            f'[identity]\nhub_id = "hub-bench"\n[buffer]\npath = "{tmp}/rss.sqlite3"\n'
            "[ble]\nmax_connections = 20\n",
            encoding="utf-8",
        )
        env_note = "" if Path("/run/dbus/system_bus_socket").exists() else " (no adapter here)"
        bare = _rss_of([], config, 5)
        idle = _rss_of(["--virtual-devices", "--device-count", "6"], config, 5)
        busy = _rss_of(
            ["--virtual-devices", "--device-count", "20", "--simulate-every", "0.05"], config, 10
        )
        print(f"hub RSS, idle, no radio{env_note}:          {bare:6.1f} MB   target <= 80")
        print(f"hub RSS, idle, 6 virtual devices:           {idle:6.1f} MB")
        print(f"hub RSS, 20 virtual devices streaming:      {busy:6.1f} MB   target <= 120")
        print("(with virtual devices, their bumble stacks live in the hub process too)")
        phones, cloud, port = _phones_config(tmp)
        serving = _rss_of([], phones, 5)
        print(f"hub RSS, idle, no radio, serving phones:     {serving:6.1f} MB   (API, discovery)")
        before, after, model, mapped = _rss_before_and_after_binding(phones, cloud, port, 5)
        loaded = f"triage on {model}, LiteRT {'mapped' if mapped else 'NOT mapped'}"
        print(f"hub RSS, phones' API, 6 devices measuring:  {before:6.1f} MB   (no patient bound)")
        print(f"  the same hub, devices bound to a patient: {after:6.1f} MB   ({loaded})")


if __name__ == "__main__":
    main()
