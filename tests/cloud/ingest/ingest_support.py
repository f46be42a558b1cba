"""Helpers for the ingestor tests: fixed keys, sealed batches, a test hub on MQTT, a running
ingestor in the test's event loop, and readers of what PostgreSQL and S3 hold."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

import aiomqtt
import boto3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from prometheus_client import CollectorRegistry

from cloud.config import DatabaseSettings
from cloud.db import add_hub, connect, open_pool
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.ports import StoragePorts
from cloud.ingest.service import Broker, Ingestor
from cloud.storage.archive import Archive
from wire import Body, Compression, Priority, seal
from wire.acks import Ack, verify_ack
from wire.keys import save_private_key
from wire.samples import sample_batch_id, sample_body
from wire.topics import ack_topic, batch_topic

REPO = Path(__file__).resolve().parents[3]
INGEST_KEY = X25519PrivateKey.from_private_bytes(bytes(range(200, 232)))
SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132)))
T0 = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def hub_key(n: int) -> Ed25519PrivateKey:
    """The fixed identity key of test hub number `n`."""
    return Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32)


def unique_hub(prefix: str = "hub") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def register(db: str, hub_id: str, key: Ed25519PrivateKey) -> None:
    with connect(db) as conn:
        add_hub(conn, hub_id, key.public_key())


@dataclass(frozen=True)
class Sealed:
    hub_id: str
    batch_id: object
    seq: int
    body: Body
    data: bytes

    @property
    def readings(self) -> int:
        return len(self.body.readings)


class BatchMaker:
    """Seals batches of sample readings for one hub, seeded, with increasing seq and time."""

    def __init__(
        self, hub_id: str, key: Ed25519PrivateKey, *, seed: int = 7, cloud_key=None
    ) -> None:
        self.hub_id = hub_id
        self.key = key
        self.cloud_key = cloud_key or INGEST_KEY.public_key()
        self.rng = random.Random(seed)
        self.seq = 0

    def make(self, n: int = 20, *, at: datetime | None = None, body: Body | None = None) -> Sealed:
        self.seq += 1
        now = at or T0 + timedelta(minutes=self.seq)
        body = body if body is not None else sample_body(n, self.rng, now)
        batch_id = sample_batch_id(self.rng, now)
        data = seal(
            body,
            hub_id=self.hub_id,
            batch_id=batch_id,
            seq=self.seq,
            now=now,
            priority=Priority.ROUTINE,
            hub_key=self.key,
            cloud_key=self.cloud_key,
            ephemeral_key=X25519PrivateKey.from_private_bytes(self.rng.randbytes(32)),
            nonce=self.rng.randbytes(12),
            compression=Compression.ZSTD,
        )
        return Sealed(self.hub_id, batch_id, self.seq, body, data)


class TestHub:
    """A hub on MQTT: publishes bytes to its up/batch topic and collects verified acks."""

    __test__ = False

    def __init__(self, broker_url: str, hub_id: str) -> None:
        self.hub_id = hub_id
        self.port = int(broker_url.rsplit(":", 1)[1])
        self.acks: list[Ack] = []
        self.bad_acks = 0
        self._changed = asyncio.Condition()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._client = aiomqtt.Client(
            "127.0.0.1", self.port, identifier=f"test-{self.hub_id}-{secrets.token_hex(3)}"
        )
        await self._client.__aenter__()
        await self._client.subscribe(ack_topic(self.hub_id), qos=1)
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        assert self._client is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)

    async def _collect(self) -> None:
        assert self._client is not None
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in self._client.messages:
                try:
                    ack = verify_ack(
                        bytes(message.payload),
                        cloud_key=SIGNING_KEY.public_key(),
                        hub_id=self.hub_id,
                    )
                except Exception:  # noqa: BLE001 - counted: a test asserts there are none
                    self.bad_acks += 1
                    continue
                async with self._changed:
                    self.acks.append(ack)
                    self._changed.notify_all()

    async def publish(self, data: bytes, *, topic_hub: str | None = None) -> None:
        assert self._client is not None
        await self._client.publish(batch_topic(topic_hub or self.hub_id), data, qos=1)

    def acks_for(self, batch_id) -> list[Ack]:
        return [a for a in self.acks if a.batch_id == batch_id]

    async def wait_ack(self, batch_id, *, count: int = 1, timeout: float = 10.0) -> Ack:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.acks_for(batch_id)) >= count)
        return self.acks_for(batch_id)[-1]

    async def wait_for(self, predicate, *, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self.acks))

    async def deliver(self, batch: Sealed, *, every: float = 0.5, timeout: float = 30.0) -> Ack:
        """Publish until acked, as the uplink does (same bytes, same batch id)."""
        deadline = time.monotonic() + timeout
        seen = len(self.acks_for(batch.batch_id))
        while True:
            with contextlib.suppress(aiomqtt.MqttError):
                await self.publish(batch.data)
            try:
                return await self.wait_ack(batch.batch_id, count=seen + 1, timeout=every)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise


def archive_for(s3_endpoint: str, bucket: str) -> Archive:
    return Archive(s3_client(s3_endpoint), bucket)


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def s3_keys(s3_endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    listed = s3_client(s3_endpoint).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


@contextlib.asynccontextmanager
async def running_ingestor(
    broker_url: str,
    db: str,
    s3_endpoint: str,
    bucket: str,
    *,
    share_group: str | None = None,
    retry_for: float = 0.0,
    db_timeout: float = 2.0,
    client_id: str | None = None,
    wrap=None,
):
    """An `Ingestor` running in this event loop until the block ends (then stopped cleanly)."""
    pool = open_pool(DatabaseSettings(url=db, pool_max=2))
    registry = CollectorRegistry()
    ports = StoragePorts(pool, archive_for(s3_endpoint, bucket), db_timeout=db_timeout)
    ingestor = Ingestor(
        broker=Broker.from_url(broker_url),
        ports=wrap(ports) if wrap else ports,
        cloud_keys=INGEST_KEY,
        signing_key=SIGNING_KEY,
        metrics=IngestMetrics(registry),
        share_group=share_group,
        retry_for=retry_for,
        client_id=client_id,
    )
    ingestor.registry = registry
    ingestor.ports = ports if wrap is None else ingestor._ports
    stop = asyncio.Event()
    ingestor.stop_event = stop
    task = asyncio.create_task(ingestor.run(stop))
    try:
        async with asyncio.timeout(10):
            await ingestor.subscribed.wait()
        yield ingestor
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task
        pool.close()


def metric(ingestor, name: str, **labels) -> float:
    return ingestor.registry.get_sample_value(name, labels) or 0.0


async def wait_metric(ingestor, name: str, at_least: float, *, timeout=10.0, **labels) -> None:
    """Wait until a counter reaches `at_least` (polling the registry; a condition, not a sleep)."""
    deadline = time.monotonic() + timeout
    while metric(ingestor, name, **labels) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} stayed below {at_least}")
        await asyncio.sleep(0.02)


def count(db: str, sql: str, *params) -> int:
    with connect(db) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0])


def stored_reading_ids(db: str) -> list:
    with connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM readings ORDER BY id").fetchall()]


def readings_as_rows(db: str) -> list[tuple]:
    """Every reading column the wire carries, by id: whole-value comparison of what is stored."""
    with connect(db) as conn:
        return conn.execute(
            "SELECT id, device_id, kind, components, device_time, measured_at_reported,"
            " received_at, quality, patient_id, encounter_id, device_seq, hub_id, batch_id"
            " FROM readings ORDER BY id"
        ).fetchall()


def expected_rows(batches: list[Sealed]) -> list[tuple]:
    rows = []
    for b in batches:
        for r in b.body.readings:
            rows.append(  # noqa: PERF401 - reads better as a loop
                (
                    r.id,
                    r.device_id,
                    r.kind,
                    {k: {"value": c.value, "unit": c.unit} for k, c in r.components.items()},
                    r.device_time,
                    r.measured_at,
                    r.received_at,
                    list(r.quality),
                    r.patient_id,
                    r.encounter_id,
                    r.device_seq,
                    b.hub_id,
                    b.batch_id,
                )
            )
    return sorted(rows, key=lambda row: row[0])


def write_keys(directory: Path) -> tuple[Path, Path]:
    ingest = directory / "ingest.pem"
    signing = directory / "signing.pem"
    save_private_key(INGEST_KEY, ingest)
    save_private_key(SIGNING_KEY, signing)
    return ingest, signing


def ingestor_process(
    tmp_path: Path,
    *,
    broker_url: str,
    db: str,
    s3_endpoint: str,
    bucket: str,
    failpoint: str | None = None,
) -> subprocess.Popen[bytes]:
    """The real `tecsa-cloud ingest` entry point in a subprocess, configured by environment."""
    ingest, signing = (
        write_keys(tmp_path / "keys")
        if not (tmp_path / "keys").exists()
        else (
            tmp_path / "keys" / "ingest.pem",
            tmp_path / "keys" / "signing.pem",
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TECSA_CLOUD_", "TECSA_FAIL"))}
    env |= {
        "TECSA_CLOUD_DATABASE__URL": db,
        "TECSA_CLOUD_S3__ENDPOINT_URL": s3_endpoint,
        "TECSA_CLOUD_S3__BUCKET": bucket,
        "TECSA_CLOUD_S3__ACCESS_KEY_ID": "test",
        "TECSA_CLOUD_S3__SECRET_ACCESS_KEY": "test",
        "TECSA_CLOUD_MQTT__BROKER_URL": broker_url,
        "TECSA_CLOUD_MQTT__SHARE_GROUP": "ingest",
        "TECSA_CLOUD_KEYS__INGEST_KEY": str(ingest),
        "TECSA_CLOUD_KEYS__SIGNING_KEY": str(signing),
        "TECSA_CLOUD_INGEST_METRICS_PORT": "0",
    }
    if failpoint:
        env["TECSA_FAILPOINT"] = failpoint
    log = (tmp_path / f"ingest-{secrets.token_hex(3)}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "cloud.ingest"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
