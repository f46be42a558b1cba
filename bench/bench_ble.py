"""BLE figures (issue 3): indication → durable row latency, and hub RSS idle and busy.

    make bench            # or: .venv/bin/python -m bench ble

Targets: p99 <= 50 ms from a device's indication to a committed SQLite row; hub RSS <= 80 MB
idle and <= 120 MB with 20 devices connected and streaming.

The radio is bumble's in-process LocalLink: it has no air time, so the latency is the hub's own
work (bleak callback, parse, convert, group commit) plus the virtual link's, not a real radio's
connection interval (7.5-50 ms more on hardware). RSS is measured on the real `tecsa-hub run`
process; with virtual devices that process also hosts the devices' bumble stacks, so the figures
are an upper bound for the hub alone, which is also shown without any radio.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLES = 400


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
        peak = 0.0
        end = time.monotonic() + seconds
        while time.monotonic() < end and proc.poll() is None:
            status = Path(f"/proc/{proc.pid}/status").read_text(encoding="utf-8")
            kb = next(
                int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
            )
            peak = max(peak, kb / 1024)
            time.sleep(0.2)
        return peak
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


if __name__ == "__main__":
    main()
