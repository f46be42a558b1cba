"""Uplink figures: hub buffer -> sealed batches -> local Mosquitto -> a subscriber that acks.

`.venv/bin/python -m bench uplink` (200,000 readings) or
`.venv/bin/python bench/bench_uplink.py --backlog 1000000 [--broker mqtt://127.0.0.1:1883]`.

The buffer is filled by a child process first, so the hub process's RSS peak is the drain's. The
acking "cloud" runs in another child process (it reads the clear header and signs an ack; it
does not decrypt), so the CPU figures are the hub's alone: its event loop and the buffer's
writer thread (sealing runs there, inside the recording transaction).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)

if TYPE_CHECKING:
    from hub.uplink import UplinkKeys

DEFAULT_BACKLOG = 200_000
FILL_CHUNK = 2_000


def _fill(path: str, n: int) -> None:
    """Child process: store `n` sample readings (not timed)."""
    from hub.buffer import Buffer, BufferConfig, NewReading  # noqa: PLC0415 - in the child
    from wire.samples import sample_reading  # noqa: PLC0415 - in the child

    async def run() -> None:
        rng = random.Random(1)
        t0 = datetime(2026, 5, 1, tzinfo=UTC)
        async with Buffer.open(BufferConfig(path=Path(path), max_unsent_bytes=8 << 30)) as buf:
            for start in range(0, n, FILL_CHUNK):
                items = [
                    NewReading(
                        sample_reading(
                            rng, t0 + timedelta(milliseconds=i), device=i % 9, patient=i % 400
                        ),
                        f"bench/{i}",
                    )
                    for i in range(start, min(n, start + FILL_CHUNK))
                ]
                await buf.insert_many(items)

    asyncio.run(run())


def _cloud(  # noqa: PLR0917 - a multiprocessing target takes positional arguments
    host: str,
    port: int,
    hub_id: str,
    signing_der: bytes,
    ready: Any,  # noqa: ANN401 - a multiprocessing Event proxy
    stats: Any,  # noqa: ANN401 - a multiprocessing shared Array
) -> None:
    """Child process: ack every batch on `up/batch` as stored (header only, no decryption)."""
    import paho.mqtt.client as paho  # noqa: PLC0415 - in the child

    from wire.acks import Ack, AckStatus, sign_ack  # noqa: PLC0415 - in the child
    from wire.envelope import peek_header  # noqa: PLC0415 - in the child
    from wire.keys import key_id  # noqa: PLC0415 - in the child
    from wire.topics import ack_topic, batch_topic  # noqa: PLC0415 - in the child

    key = load_der_private_key(signing_der, None)
    assert isinstance(key, Ed25519PrivateKey)  # noqa: S101 - built by the parent
    kid = key_id(key)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-cloud-{hub_id}")
    client.max_inflight_messages_set(1000)

    def on_connect(c: paho.Client, *_args: object) -> None:
        c.subscribe(batch_topic(hub_id), qos=1)

    def on_subscribe(*_args: object) -> None:
        ready.set()

    def on_message(c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        header = peek_header(msg.payload)
        with stats.get_lock():
            stats[0] += 1
            stats[1] += len(msg.payload)
        ack = Ack(
            hub_id=hub_id,
            batch_id=header.batch_id,
            seq=header.seq,
            status=AckStatus.STORED,
            acked_at=datetime.now(UTC),
            key=kid,
            payload_sha256=hashlib.sha256(msg.payload).hexdigest(),
        )
        c.publish(ack_topic(hub_id), sign_ack(ack, key), qos=1)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port)
    client.loop_forever()


async def _drain(  # noqa: PLR0917 - a private helper of this script
    path: Path,
    n: int,
    broker: str,
    hub_id: str,
    keys: UplinkKeys,
    stats: Any,  # noqa: ANN401 - a multiprocessing shared Array
) -> dict[str, float]:
    from prometheus_client import CollectorRegistry  # noqa: PLC0415 - after the fork

    from hub.buffer import Buffer, BufferConfig  # noqa: PLC0415 - after the fork
    from hub.uplink import BatchLimits, UplinkConfig, UplinkService  # noqa: PLC0415

    config = UplinkConfig(
        hub_id=hub_id,
        broker_url=broker,
        batch=BatchLimits(max_items=500, max_age=0.05),
        window=16,
        ack_timeout_s=60.0,
        idle_poll_s=0.05,
        status_interval_s=3600.0,
    )
    registry = CollectorRegistry()
    async with Buffer.open(BufferConfig(path=path, max_unsent_bytes=8 << 30)) as buf:
        service = UplinkService(config, buf, keys, registry=registry)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        task = asyncio.create_task(service.run())
        while (registry.get_sample_value("tecsa_uplink_readings_delivered_total") or 0) < n:
            if task.done():
                task.result()
                raise RuntimeError("the uplink stopped early")
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        service.request_stop()
        await task
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"elapsed": elapsed, "cpu": cpu, "batches": stats[0], "bytes": stats[1]}


def _rss_kib() -> int:
    """This process's resident set now (not its all-time peak: `-m bench` runs others first)."""
    with open("/proc/self/status", encoding="utf-8") as status:  # noqa: PTH123 - a proc file
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


class _RssSampler(threading.Thread):
    """Samples the current RSS every 50 ms while the drain runs; `peak` in KiB."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.peak = _rss_kib()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, _rss_kib())


def run(backlog: int, broker: str) -> None:
    """Fill, drain, print."""
    from hub.uplink import UplinkKeys  # noqa: PLC0415 - keep the parent light before forking

    ctx = mp.get_context("spawn")
    hub_id = f"bench-{uuid.uuid4().hex[:12]}"
    hub_key, ingest, signing = (
        Ed25519PrivateKey.generate(),
        X25519PrivateKey.generate(),
        Ed25519PrivateKey.generate(),
    )
    host, port = broker.removeprefix("mqtt://").rsplit(":", 1)
    with tempfile.TemporaryDirectory(prefix="bench-uplink-") as tmp:
        path = Path(tmp) / "buffer.sqlite3"
        t0 = time.perf_counter()
        filler = ctx.Process(target=_fill, args=(str(path), backlog))
        filler.start()
        filler.join()
        print(f"filled {backlog:,} readings in {time.perf_counter() - t0:.1f} s (not timed below)")
        ready = ctx.Event()
        stats = ctx.Array("q", 2)
        der = signing.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        cloud = ctx.Process(target=_cloud, args=(host, int(port), hub_id, der, ready, stats))
        cloud.start()
        try:
            if not ready.wait(10):
                raise RuntimeError("the acking subscriber did not come up")
            keys = UplinkKeys(
                hub_identity=hub_key,
                cloud_ingest=ingest.public_key(),
                cloud_signing=signing.public_key(),
            )
            gc.collect()
            rss0 = _rss_kib()
            sampler = _RssSampler()
            sampler.start()
            try:
                figures = asyncio.run(_drain(path, backlog, broker, hub_id, keys, stats))
            finally:
                sampler.stop.set()
                sampler.join()
            rss = sampler.peak
        finally:
            cloud.kill()
            cloud.join()
    rate = backlog / figures["elapsed"]
    print(f"broker {broker}, batches of 500, window 16, acking subscriber in another process")
    print(f"drain of {backlog:,} readings: {figures['elapsed']:.1f} s")
    print(f"  readings/s forwarded and acked      {rate:>10,.0f}   (target >= 50,000)")
    cpu_per = figures["cpu"] / backlog * 100_000
    print(f"  hub CPU s per 100,000 readings      {cpu_per:>10.2f}   (target <= 2, incl. sealing)")
    print(
        f"  hub RSS peak                        {rss / 1024:>10.0f} MiB"
        f" (before the drain {rss0 / 1024:.0f}; target <= 150)"
    )
    print(
        f"  bytes sent per reading              {figures['bytes'] / backlog:>10.1f}"
        "   (sealed batch bytes, MQTT framing aside)"
    )
    print(f"  batches published                   {figures['batches']:>10,}")


def main(argv: list[str] | None = None) -> None:
    """Entry point for `python -m bench uplink` and the command line."""
    from hub.logging import configure_logging  # noqa: PLC0415 - only when run

    configure_logging(level="WARNING")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    args = parser.parse_args([] if argv is None else argv)
    run(args.backlog, args.broker)


if __name__ == "__main__":
    main(sys.argv[1:])
