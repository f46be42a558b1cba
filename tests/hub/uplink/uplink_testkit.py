"""Helpers for the uplink tests (imported by name: tests are not a package).

`TestCloud` is a small cloud of the test's own: a paho subscriber on `up/batch` that opens each
batch with `wire.open_sealed`, records reading ids (deduplicated) and the bytes of every batch id,
and answers on `down/ack` with `wire.acks.sign_ack` according to a policy the test sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hub.buffer import Buffer, BufferConfig, NewReading, Priority
from hub.uplink import Backoff, BatchLimits, UplinkConfig, UplinkKeys, UplinkService
from wire.acks import Ack, AckStatus, sign_ack
from wire.envelope import Header, open_sealed
from wire.keys import key_id, save_private_key, save_public_key
from wire.samples import sample_reading
from wire.topics import ack_topic, batch_topic, status_topic

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
HERE = Path(__file__).parent


def new_hub_id() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True)
class Keys:
    hub: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    ingest: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    signing: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def uplink(self) -> UplinkKeys:
        return UplinkKeys(
            hub_identity=self.hub,
            cloud_ingest=self.ingest.public_key(),
            cloud_signing=self.signing.public_key(),
        )

    def save(self, directory: Path) -> dict[str, Path]:
        paths = {
            "hub_identity": directory / "identity.ed25519.pem",
            "cloud_ingest": directory / "cloud-ingest.pub.pem",
            "cloud_signing": directory / "cloud-signing.pub.pem",
        }
        save_private_key(self.hub, paths["hub_identity"])
        save_public_key(self.ingest, paths["cloud_ingest"])
        save_public_key(self.signing, paths["cloud_signing"])
        return paths


Policy = Callable[[Header], AckStatus | None]


def always(status: AckStatus | None) -> Policy:
    return lambda _header: status


class TestCloud:
    """A cloud of the test's own on one broker, for one hub id."""

    __test__ = False  # not a test class, despite the name

    def __init__(
        self, port: int, hub_id: str, keys: Keys, *, policy: Policy = always(AckStatus.STORED)
    ) -> None:
        self.port = port
        self.hub_id = hub_id
        self.keys = keys
        self.policy = policy
        self.readings: set[str] = set()
        self.deliveries = 0
        """Readings received, counting duplicates."""
        self.batches: dict[uuid.UUID, bytes] = {}
        self.publications: dict[uuid.UUID, int] = {}
        self.conflicts: list[uuid.UUID] = []
        """Batch ids seen again with different bytes (must stay empty)."""
        self.seqs: list[int] = []
        self.bodies: list[tuple[Header, object]] = []
        """Every batch (header, wire Body) opened, in arrival order (republications included)."""
        self.statuses: list[bytes] = []
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"test-cloud-{hub_id}",
            clean_session=False,
        )
        self._client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._connected = threading.Event()

    def start(self) -> TestCloud:
        self._client.connect("127.0.0.1", self.port, keepalive=10)
        self._client.loop_start()
        assert self._connected.wait(10), "test cloud could not connect"
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> TestCloud:  # noqa: PYI034 - a final helper class
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def publish_ack(self, payload: bytes) -> None:
        self._client.publish(ack_topic(self.hub_id), payload, qos=1)

    def sign(
        self, header: Header, status: AckStatus, *, key=None, hub_id=None, seq=None, payload=None
    ) -> bytes:
        """A signed ack; by default about the bytes this cloud received for the batch."""
        key = key or self.keys.signing
        if payload is None:
            with self._cond:
                payload = self.batches.get(header.batch_id, b"")
        ack = Ack(
            hub_id=hub_id or header.hub_id,
            batch_id=header.batch_id,
            seq=header.seq if seq is None else seq,
            status=status,
            reason="test says no" if status is AckStatus.REJECTED else None,
            acked_at=datetime.now(UTC),
            key=key_id(key),
            payload_sha256=hashlib.sha256(payload).hexdigest(),
        )
        return sign_ack(ack, key)

    def wait(self, cond: Callable[[TestCloud], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not cond(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"test cloud: condition not met in {timeout} s")
                self._cond.wait(left)

    async def until(self, cond: Callable[[TestCloud], bool], timeout: float = 20.0) -> None:
        """`wait` without blocking the event loop the hub runs on."""
        await asyncio.to_thread(self.wait, cond, timeout)

    def _on_connect(self, client, _userdata, _flags, _reason, _props=None) -> None:
        client.subscribe(batch_topic(self.hub_id), qos=1)
        client.subscribe(status_topic(self.hub_id), qos=1)
        self._connected.set()

    def _on_message(self, _client, _userdata, message) -> None:
        if message.topic == status_topic(self.hub_id):
            with self._cond:
                self.statuses.append(message.payload)
                self._cond.notify_all()
            return
        data = bytes(message.payload)
        try:
            opened = open_sealed(
                data, hub_key=self.keys.hub.public_key(), cloud_keys=self.keys.ingest
            )
        except Exception as exc:  # noqa: BLE001 - recorded and asserted on by the tests
            with self._cond:
                self.errors.append(repr(exc))
                self._cond.notify_all()
            return
        header = opened.header
        status = self.policy(header)
        with self._cond:
            previous = self.batches.setdefault(header.batch_id, data)
            if previous != data:
                self.conflicts.append(header.batch_id)
            self.publications[header.batch_id] = self.publications.get(header.batch_id, 0) + 1
            self.seqs.append(header.seq)
            self.bodies.append((header, opened.body))
            if status is not AckStatus.REJECTED:
                self.deliveries += len(opened.body.readings)
                self.readings.update(str(r.id) for r in opened.body.readings)
            self._cond.notify_all()
        if status is not None:
            self.publish_ack(self.sign(header, status))


async def fill(
    buffer: Buffer, n: int, *, seed: int = 1, priority: int = Priority.ROUTINE
) -> set[str]:
    """Store `n` sample readings; returns their ids."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        r = sample_reading(rng, T0 + timedelta(seconds=i), device=i % 7, patient=i % 31)
        items.append(NewReading(r, f"dev/{seed}/{i}", priority))
    await buffer.insert_many(items)
    return {str(i.reading.id) for i in items}


def uplink_config(hub_id: str, port: int, **overrides) -> UplinkConfig:
    base = {
        "hub_id": hub_id,
        "broker_url": f"mqtt://127.0.0.1:{port}",
        "batch": BatchLimits(max_items=50, max_age=0.05),
        "ack_timeout_s": 3.0,
        "idle_poll_s": 0.05,
        "reconnect": Backoff(base=0.05, cap=0.3),
        "probe": Backoff(base=0.1, cap=0.5),
        "timeout_s": 3.0,
        "status_interval_s": 0.5,
    }
    return UplinkConfig(**(base | overrides))


class Running:
    """An `UplinkService` running in a task of the current loop."""

    def __init__(self, service: UplinkService) -> None:
        self.service = service
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> UplinkService:
        self.task = asyncio.create_task(self.service.run())
        return self.service

    async def __aexit__(self, *_: object) -> None:
        assert self.task is not None
        self.service.request_stop()
        await asyncio.wait_for(self.task, 15)


async def observe(seconds: float) -> None:
    """Let `seconds` pass: only to show that something does NOT happen within that window."""
    await asyncio.sleep(seconds)


async def eventually(cond: Callable[[], bool], *, timeout: float = 20.0, what: str = "") -> None:
    """Wait until `cond()` holds, checking every 20 ms; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")
        await asyncio.sleep(0.02)


def wait_until(cond: Callable[[], bool], *, timeout: float = 20.0) -> None:
    """`eventually` for synchronous tests."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {cond}")
        time.sleep(0.02)


def unsent(buffer_path: Path) -> int:
    import sqlite3  # noqa: PLC0415 - only the subprocess tests look at the file directly

    with contextlib.closing(sqlite3.connect(buffer_path)) as conn:
        return conn.execute("SELECT count(*) FROM readings WHERE delivered_at IS NULL").fetchone()[
            0
        ]


def start_hub_process(
    db: Path, keys: dict[str, Path], hub_id: str, port: int
) -> subprocess.Popen[str]:
    """The uplink in a child process (`hub_process.py`), to be killed with SIGKILL."""
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    return subprocess.Popen(
        [
            sys.executable,
            str(HERE / "hub_process.py"),
            str(db),
            str(keys["hub_identity"]),
            str(keys["cloud_ingest"]),
            str(keys["cloud_signing"]),
            hub_id,
            str(port),
        ],
        stdout=db.with_suffix(".log").open("a"),
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def open_buffer(path: Path) -> Buffer:
    return Buffer.open(BufferConfig(path=path))
