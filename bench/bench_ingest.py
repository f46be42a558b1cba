"""Ingestor figures (issue 4): readings/s end to end, ingestor RSS, and the raw COPY bound.

    make bench            # or: .venv/bin/python -m bench ingest

A hub (this process) publishes BATCHES sealed batches of BATCH readings to a Mosquitto of the
bench's own, keeping WINDOW batches unacked at most, as the uplink does; the real ingestor
(`python -m cloud.ingest`, one or two processes on one shared subscription) verifies, archives
to a moto S3 server (a process of its own), stores into a fresh PostgreSQL database and acks.
Timed: first publish to last ack; sealing is done before. Every process runs on this machine,
so the CPU seconds each group of processes used in that window are printed too (ingestors,
PostgreSQL, moto, Mosquitto, the publishing bench): what the ingestor costs, and what only
competes with it here. Then the same rows are COPYed straight into the same table, the bound
that idempotency, sealing, S3 and MQTT are measured against. Needs PostgreSQL on
127.0.0.1:5432 (or TECSA_BENCH_PG) and /usr/sbin/mosquitto (or TECSA_BENCH_MOSQUITTO).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Self

import aiomqtt
import boto3
import psutil
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from cloud.db import add_hub, connect, ensure_partitions_around, upgrade
from wire import Priority, seal
from wire.acks import verify_ack
from wire.keys import save_private_key
from wire.samples import sample_batch_id, sample_body
from wire.topics import ack_topic, batch_topic

if TYPE_CHECKING:
    from collections.abc import Iterator

    from wire.items import Body

BATCH = 500
BATCHES = 200
WINDOW = 16
HUBS = 4
ADMIN = os.environ.get("TECSA_BENCH_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
MOSQUITTO = os.environ.get("TECSA_BENCH_MOSQUITTO", "/usr/sbin/mosquitto")
REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    """Print end-to-end readings/s with one and two ingestors, their RSS, and the COPY bound."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    name = f"tecsa_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            _moto() as (s3, moto_pid),
            _mosquitto(Path(tmp)) as (mqtt, mqtt_pid),
        ):
            others = {"moto": [moto_pid], "mosquitto": [mqtt_pid], "bench": [os.getpid()]}
            _run(make_conninfo(ADMIN, dbname=name), s3, mqtt, Path(tmp), others)
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _run(url: str, s3: str, mqtt_port: int, tmp: Path, others: dict[str, list[int]]) -> None:
    upgrade(url)
    ingest_key = X25519PrivateKey.generate()
    signing_key = Ed25519PrivateKey.generate()
    save_private_key(ingest_key, tmp / "ingest.pem")
    save_private_key(signing_key, tmp / "signing.pem")
    hubs = [(f"hub-bench-{i:02d}", Ed25519PrivateKey.generate()) for i in range(HUBS)]
    now = datetime.now(UTC)
    with connect(url) as conn:
        for hub_id, key in hubs:
            add_hub(conn, hub_id, key.public_key())
        ensure_partitions_around(conn, now)  # as `db upgrade` does: no DDL inside the timing
    boto3.client("s3", endpoint_url=s3, **_S3_CREDS).create_bucket(Bucket="bench")
    env = _env(url, s3, mqtt_port, tmp)

    rng = random.Random(20261128)
    print(f"{BATCHES} batches x {BATCH} readings from {HUBS} hubs, window {WINDOW} unacked,")
    print("local Mosquitto, moto S3 server (own process), local PostgreSQL, all on this machine")
    print(f"({os.cpu_count()} CPUs; CPU s per 100k readings by process group while timed)")
    all_bodies: list[Body] = []
    for ingestors in (1, 2):
        sealed, bodies = _seal(hubs, ingest_key, rng, now)
        all_bodies += bodies
        procs = [_start(env, tmp, i) for i in range(ingestors)]
        try:
            rss = _RssSampler([p.pid for p in procs])
            cpu = _CpuMeter({"ingest": [p.pid for p in procs], **others})
            with rss:
                seconds, idle_rss = asyncio.run(
                    _drive(mqtt_port, sealed, signing_key, rss, cpu, warmup=sealed[:HUBS])
                )
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
        rate = BATCHES * BATCH / seconds
        peak = ", ".join(f"{mb:.0f}" for mb in rss.peak_mb())
        idle = ", ".join(f"{mb:.0f}" for mb in idle_rss)
        print(
            f"{ingestors} ingestor{'s' if ingestors > 1 else ' '}  {rate:>10,.0f} readings/s "
            f"end to end ({seconds:.1f} s)   RSS MB idle [{idle}] peak under load [{peak}]"
        )
        per_100k = 100_000 / (BATCHES * BATCH)
        used = "  ".join(f"{k} {v * per_100k:.2f}" for k, v in cpu.used.items())
        print(f"             CPU s/100k readings: {used}")
        last_rate = rate
    raw_rate = _raw_copy(url, all_bodies[-BATCHES:])
    print(
        f"raw COPY     {raw_rate:>10,.0f} rows/s   (binary COPY of the same rows, 1 commit/batch)"
    )
    print(f"ratio        {last_rate / raw_rate:>10.2f}      end to end (2 ingestors) / raw COPY")


def _seal(
    hubs: list[tuple[str, Ed25519PrivateKey]],
    ingest_key: X25519PrivateKey,
    rng: random.Random,
    now: datetime,
) -> tuple[list[tuple[str, object, bytes]], list[Body]]:
    """HUBS extra warm-up batches first, then BATCHES timed ones; sealing is not timed."""
    sealed, bodies = [], []
    for i in range(BATCHES + HUBS):
        hub_id, key = hubs[i % HUBS]
        t = now + timedelta(milliseconds=i)
        body = sample_body(BATCH, rng, t)
        batch_id = sample_batch_id(rng, t)
        data = seal(
            body,
            hub_id=hub_id,
            batch_id=batch_id,
            seq=i,
            now=t,
            priority=Priority.ROUTINE,
            hub_key=key,
            cloud_key=ingest_key.public_key(),
            ephemeral_key=X25519PrivateKey.generate(),
            nonce=rng.randbytes(12),
        )
        sealed.append((hub_id, batch_id, data))
        bodies.append(body)
    return sealed, bodies[HUBS:]


async def _drive(
    port: int,
    sealed: list[tuple[str, object, bytes]],
    signing_key: Ed25519PrivateKey,
    rss: _RssSampler,
    cpu: _CpuMeter,
    *,
    warmup: list[tuple[str, object, bytes]],
) -> tuple[float, list[float]]:
    """Publish, WINDOW unacked at most; seconds from first publish to last ack, idle RSS."""
    acked: dict[object, asyncio.Event] = {b: asyncio.Event() for _, b, _ in sealed}
    hub_ids = sorted({h for h, _, _ in sealed})
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-{secrets.token_hex(3)}") as c:
        c.pending_calls_threshold = WINDOW * 2  # WINDOW publishes in flight is the plan
        for hub_id in hub_ids:
            await c.subscribe(ack_topic(hub_id), qos=1)

        async def collect() -> None:
            async for message in c.messages:
                hub_id = message.topic.value.split("/")[3]
                ack = verify_ack(
                    bytes(message.payload),  # type: ignore[arg-type]
                    cloud_key=signing_key.public_key(),
                    hub_id=hub_id,
                )
                acked[ack.batch_id].set()

        collector = asyncio.create_task(collect())
        for hub_id, batch_id, data in warmup:  # until the ingestors are subscribed
            while not acked[batch_id].is_set():
                await c.publish(batch_topic(hub_id), data, qos=1)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(acked[batch_id].wait(), 0.5)
        idle = rss.current_mb()
        rss.reset()
        window = asyncio.Semaphore(WINDOW)

        async def one(hub_id: str, batch_id: object, data: bytes) -> None:
            async with window:
                await c.publish(batch_topic(hub_id), data, qos=1)
                await asyncio.wait_for(acked[batch_id].wait(), 120)

        cpu.start()
        start = time.perf_counter()
        await asyncio.gather(*(one(*s) for s in sealed[len(warmup) :]))
        seconds = time.perf_counter() - start
        cpu.stop()
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
    return seconds, idle


def _raw_copy(url: str, bodies: list[Body]) -> float:
    columns = (
        "id, measured_at, measured_at_reported, received_at, device_time, device_id, kind, "
        "components, quality, patient_id, encounter_id, device_seq, hub_id, batch_id"
    )
    types = [
        "uuid", "timestamptz", "timestamptz", "timestamptz", "timestamp", "text", "text",
        "jsonb", "text[]", "text", "uuid", "int8", "text", "uuid",
    ]  # fmt: skip
    with connect(url) as conn:
        conn.execute("TRUNCATE readings")
        conn.execute("CHECKPOINT")
        start = time.perf_counter()
        for body in bodies:
            batch_id = uuid.uuid4()
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY readings ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(types)
                for r in body.readings:
                    components = {
                        k: {"value": c.value, "unit": c.unit} for k, c in r.components.items()
                    }
                    copy.write_row(
                        (
                            r.id, r.measured_at or r.received_at, r.measured_at, r.received_at,
                            r.device_time, r.device_id, r.kind, Jsonb(components),
                            list(r.quality), r.patient_id, r.encounter_id, r.device_seq,
                            "hub-bench-00", batch_id,
                        )
                    )  # fmt: skip
        return len(bodies) * BATCH / (time.perf_counter() - start)


class _CpuMeter:
    """CPU seconds (user + system) used by groups of processes between start() and stop().

    Every PostgreSQL process counts (the backends of this bench and anything else running);
    "other" is the rest of the machine's busy time meanwhile (anything else running here).
    """

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = {"ingest": groups.pop("ingest"), "postgres": [], **groups}
        self._before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out = {}
        for name, pids in self._groups.items():
            procs = (
                [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
                if name == "postgres"
                else [psutil.Process(pid) for pid in pids]
            )
            total = 0.0
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    total += t.user + t.system
            out[name] = total
        machine = psutil.cpu_times()
        busy = machine.user + machine.system + machine.nice + getattr(machine, "softirq", 0.0)
        out["other"] = busy - sum(out.values())
        return out

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> None:
        after = self._now()
        self.used = {k: max(0.0, after[k] - self._before.get(k, 0.0)) for k in after}


class _RssSampler:
    """Samples VmRSS of some processes every 50 ms in a thread; keeps the peak."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self._peak = [0.0] * len(pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            for i, mb in enumerate(self.current_mb()):
                self._peak[i] = max(self._peak[i], mb)

    def current_mb(self) -> list[float]:
        return [_rss_mb(pid) for pid in self.pids]

    def reset(self) -> None:
        self._peak = [0.0] * len(self.pids)

    def peak_mb(self) -> list[float]:
        return list(self._peak)


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


_S3_CREDS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "bench",
    "aws_secret_access_key": "bench",  # moto accepts anything
}


def _env(url: str, s3: str, mqtt_port: int, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECSA_")}
    return env | {
        "TECSA_CLOUD_DATABASE__URL": url,
        "TECSA_CLOUD_S3__ENDPOINT_URL": s3,
        "TECSA_CLOUD_S3__BUCKET": "bench",
        "TECSA_CLOUD_S3__ACCESS_KEY_ID": "bench",
        "TECSA_CLOUD_S3__SECRET_ACCESS_KEY": "bench",
        "TECSA_CLOUD_MQTT__BROKER_URL": f"mqtt://127.0.0.1:{mqtt_port}",
        "TECSA_CLOUD_MQTT__SHARE_GROUP": "ingest",
        "TECSA_CLOUD_KEYS__INGEST_KEY": str(tmp / "ingest.pem"),
        "TECSA_CLOUD_KEYS__SIGNING_KEY": str(tmp / "signing.pem"),
        "TECSA_CLOUD_INGEST_METRICS_PORT": "0",
        "TECSA_CLOUD_LOG_LEVEL": "WARNING",
    }


def _start(env: dict[str, str], tmp: Path, n: int) -> subprocess.Popen[bytes]:
    log = (tmp / f"ingest-{n}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "cloud.ingest"], cwd=REPO, env=env, stdout=log, stderr=log
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        else:
            return


@contextlib.contextmanager
def _moto() -> Iterator[tuple[str, int]]:
    """A moto S3 server in a process of its own: it must not share the publisher's GIL."""
    port = _free_port()
    proc = subprocess.Popen(  # noqa: S603 - moto's own server module, in this interpreter
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def _mosquitto(tmp: Path) -> Iterator[tuple[int, int]]:
    port = _free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(  # noqa: S603 - the broker binary named in the module docstring
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_port(port)
        yield port, proc.pid
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
