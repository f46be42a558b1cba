"""Phones syncing to a real hub daemon over TLS: bulk-sync latency and 20 phones at once.

Run: .venv/bin/python -m bench phone   [--requests N] [--phones P] [--records R]
     [--synchronous NORMAL|FULL]

The hub is `tecsa-hub run` in its own process (API and discovery on 127.0.0.1, BLE and uplink
off). A request's latency ends when its 1,000 per-record answers were read, i.e. after the
hub's buffer committed them (durable: WAL, synchronous as given). The phones are processes,
each with its own SQLite queue and token, driving the reference client (`phone.sync`); the
records/s figure counts records answered by the hub from the first request to the last answer.
Peak RSS is the hub process's VmHWM.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.api.tls import fingerprint
from phone.client import HubClient
from phone.queue import Queue, State, new_record
from phone.sync import sync_queue
from wire.keys import save_public_key
from wire.tokens import Role, issue

BIN = Path(sys.executable).parent


def main() -> None:
    """Print bulk-sync p50/p95 latency and 20-phone throughput with the hub's peak RSS."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--phones", type=int, default=20)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hub = _Hub(Path(tmp), args.synchronous)
        try:
            print(
                f"hub daemon (own process), TLS on 127.0.0.1, buffer synchronous="
                f"{args.synchronous}; {os.cpu_count()} CPUs shared with the phones"
            )
            _latency(hub, args.requests, args.records)
            _concurrent(hub, Path(tmp), args.phones, args.records)
        finally:
            hub.stop()


class _Hub:
    def __init__(self, tmp: Path, synchronous: str) -> None:
        self.cloud = Ed25519PrivateKey.generate()
        keys = tmp / "keys"
        save_public_key(self.cloud, keys / "cloud-signing.pub.pem")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        config = tmp / "hub.toml"
        config.write_text(
            f'[identity]\nhub_id = "hub-bench"\nkey_dir = "{keys}"\n'
            f'cloud_signing_key = "{keys}/cloud-signing.pub.pem"\n'
            f'[buffer]\npath = "{tmp}/buffer.sqlite3"\nsynchronous = "{synchronous}"\n'
            f'[api]\nhost = "127.0.0.1"\nport = {self.port}\n'
            '[discovery]\ninterfaces = ["127.0.0.1"]\n'
            "[ble]\nenabled = false\n[uplink]\nenabled = false\n",
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("TECSA_HUB_")}
        self.proc = subprocess.Popen(  # noqa: S603 - the project's own command
            [str(BIN / "tecsa-hub"), "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the hub did not start") from None
                time.sleep(0.1)
        self.fingerprint = fingerprint((keys / "tls.crt.pem").read_bytes())

    def token(self, agent: str) -> str:
        return issue(
            self.cloud,
            agent_id=agent,
            role=Role.AGENT,
            now=datetime.now(UTC),
            lifetime=timedelta(hours=2),
            token_id=f"bench-{agent}",
        )

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def _records(agent: str, n: int) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [
        new_record(
            patient_id=f"pat-{i % 300:04d}",
            agent_id=agent,
            type_="household_visit",
            payload={
                "visit": i,
                "household_size": 3 + i % 6,
                "children_under_5": i % 3,
                "notes": "bed nets seen in every room; next visit in two weeks",
                "muac_mm": 131 + i % 20,
            },
            now=now,
            rand=os.urandom(10),
        )
        for i in range(n)
    ]


def _latency(hub: _Hub, requests: int, per_request: int) -> None:
    batches = [_records("agent-lat", per_request) for _ in range(requests)]
    times = []
    with HubClient(
        "127.0.0.1", hub.port, fingerprint=hub.fingerprint, token=hub.token("agent-lat")
    ) as client:
        client.hub_info()  # the TLS handshake is not part of a sync's cost
        for batch in batches:
            start = time.perf_counter()
            results = client.bulk_sync(batch)
            times.append((time.perf_counter() - start) * 1000)
            if {r["outcome"] for r in results} != {"accepted"}:
                raise RuntimeError("a benchmark record was not accepted")
    q = statistics.quantiles(times, n=20)
    print(f"\nbulk-sync of {per_request} records, {requests} requests, one phone:")
    print(
        f"  p50 {statistics.median(times):7.1f} ms   p95 {q[18]:7.1f} ms   (target p95 <= 300 ms)"
    )
    print(
        f"  max {max(times):7.1f} ms   records/s {per_request * requests / sum(times) * 1000:,.0f}"
    )


def _phone(args: tuple[str, int, str, str, str, float]) -> tuple[int, float]:
    path, port, fp, token, hub_id, start_at = args
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with (
        Queue.open(Path(path)) as queue,
        HubClient("127.0.0.1", port, fingerprint=fp, token=token) as client,
    ):
        time.sleep(max(0.0, start_at - time.time()))
        report = sync_queue(queue, client, hub_id=hub_id)
        done = time.time()
        return report.answered[State.SYNCED], done


def _concurrent(hub: _Hub, tmp: Path, phones: int, per_phone: int) -> None:
    jobs = []
    for p in range(phones):
        agent = f"agent-{p:02d}"
        path = tmp / f"phone-{p:02d}.sqlite3"
        with Queue.open(path) as queue:
            queue.add_many(_records(agent, per_phone))
        jobs.append((str(path), hub.port, hub.fingerprint, hub.token(agent), "hub-bench"))
    rss_before = hub.peak_rss_mib()
    with multiprocessing.get_context("spawn").Pool(phones) as pool:
        start_at = time.time() + 3.0  # every phone process is up and its queue open by then
        results = pool.map(_phone, [(*job, start_at) for job in jobs])
    synced = sum(n for n, _ in results)
    elapsed = max(t for _, t in results) - start_at
    if synced != phones * per_phone:
        raise RuntimeError(f"only {synced} of {phones * per_phone} records synced")
    print(f"\n{phones} phones x {per_phone} records at once (processes, own queue and token each):")
    print(f"  {synced:,} records in {elapsed:.2f} s = {synced / elapsed:,.0f} records/s")
    print(
        f"  hub peak RSS {hub.peak_rss_mib():.0f} MiB (after the latency run: {rss_before:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
