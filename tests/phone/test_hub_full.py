"""507: a hub whose buffer is full keeps nothing back from the phone, and the phone keeps its queue.

The hub here is the real API application over real TLS (uvicorn) with a real buffer whose cap is
tiny, filled by a real reading; delivering that reading frees the hub.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hubproc import free_port

from hub.api.app import ApiContext, HubStatus, create_app
from hub.api.tls import ensure_certificate
from hub.buffer import Buffer, BufferConfig
from hub.buffer.store import SyncWrites
from phone.client import HubClient
from phone.errors import HubFull
from phone.queue import Queue, State, new_record
from phone.sync import SyncPolicy, sync_queue
from wire.samples import sample_reading
from wire.tokens import Role, issue

CLOUD = Ed25519PrivateKey.generate()


@pytest.fixture
def small_hub(tmp_path):
    buffer = Buffer.open(BufferConfig(path=tmp_path / "buffer.sqlite3", max_unsent_bytes=64))
    tls = ensure_certificate(tmp_path, hub_id="hub-full-01", now=datetime.now(UTC))
    app = create_app(
        ApiContext(
            hub_id="hub-full-01",
            cloud_signing_key=CLOUD.public_key(),
            revoked=frozenset,
            status=lambda: HubStatus(0, at_capacity=buffer.at_capacity, capacity_hours_left=None),
            sync_records=buffer.sync_records,
        )
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            ssl_certfile=str(tls.cert_path),
            ssl_keyfile=str(tls.key_path),
            log_config=None,
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield buffer, port, tls.fingerprint
    server.should_exit = True
    thread.join(timeout=30)
    buffer.close()


class _WholeJitter(random.Random):
    """Jitter always at the top of its range, so that the backoff is exactly predictable."""

    def uniform(self, a: float, b: float) -> float:
        del a
        return b


def test_a_full_hub_answers_507_the_phone_backs_off_keeps_its_queue_then_syncs(small_hub, tmp_path):
    buffer, port, fingerprint = small_hub
    reading = sample_reading(random.Random(1), datetime.now(UTC), device=1, patient=1)
    SyncWrites(buffer).insert(reading, dedupe_key="full-test-1")
    assert buffer.at_capacity
    token = issue(
        CLOUD,
        agent_id="agent-17",
        role=Role.AGENT,
        now=datetime.now(UTC),
        lifetime=timedelta(hours=1),
        token_id="t-full",
    )
    now = datetime.now(UTC)
    records = [
        new_record(
            patient_id="pat-1",
            agent_id="agent-17",
            type_="household_visit",
            payload={"visit": n},
            now=now,
            rand=os.urandom(10),
        )
        for n in range(5)
    ]
    policy = SyncPolicy(attempts=3, base_delay_s=1.0, max_delay_s=4.0)
    with (
        Queue.open(tmp_path / "phone.sqlite3") as queue,
        HubClient("127.0.0.1", port, fingerprint=fingerprint, token=token) as client,
    ):
        queue.add_many(records)
        sleeps: list[float] = []
        report = sync_queue(
            queue,
            client,
            hub_id="hub-full-01",
            policy=policy,
            sleep=sleeps.append,
            rng=_WholeJitter(),
        )
        assert isinstance(report.error, HubFull)
        assert "full" in str(report.error)
        assert report.requests == 3  # tried, backed off twice, stopped: the queue is kept
        assert sleeps == [1.0, 2.0]  # exponential from base_delay_s (jitter at its top)
        assert queue.counts()[State.PENDING] == 5
        assert buffer.record_versions(uuid.UUID(records[0]["id"])) == []

        batch = uuid.uuid4()
        writes = SyncWrites(buffer)
        writes.assign_batch(batch, [reading.id])
        writes.mark_delivered(batch, at=datetime.now(UTC))
        assert not buffer.at_capacity

        report = sync_queue(queue, client, hub_id="hub-full-01", policy=policy, sleep=sleeps.append)
        assert report.complete
        assert queue.counts()[State.SYNCED] == 5
    assert [len(buffer.record_versions(uuid.UUID(r["id"]))) for r in records] == [1] * 5
