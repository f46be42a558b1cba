"""Medical records and triage results from a hub buffer to PostgreSQL, on real components.

Hub buffer (SQLite) → uplink → own Mosquitto → the ingestor (in this process, as the ingest tests
run it) → PostgreSQL + moto S3. Records synced into the buffer (a conflict among them) and triage
results arrive exactly once; a conflict lands in `record_conflicts`; a high-band triage result
added while 5,000 routine readings wait travels in the first batch; a hub SIGKILLed between
publishing and the ack republishes after its restart and the cloud stores nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import aiomqtt
import boto3
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from cloud.cli import app as cloud_app
from cloud.config import DatabaseSettings
from cloud.db import add_hub, connect, open_pool
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.ports import StoragePorts
from cloud.ingest.service import Broker, Ingestor
from cloud.storage.archive import Archive
from hub.buffer import Buffer, BufferConfig, NewReading
from hub.records.merge import check
from hub.uplink import Backoff, BatchLimits, UplinkConfig, UplinkKeys, UplinkService
from wire.canonical import content_hash
from wire.items import MedicalRecord, RiskBand, TriageResult
from wire.keys import save_private_key, save_public_key
from wire.samples import sample_reading
from wire.topics import batch_topic

REPO = Path(__file__).resolve().parents[2]
HUB_PROCESS = REPO / "tests" / "hub" / "uplink" / "hub_process.py"
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


class Keys:
    def __init__(self) -> None:
        self.hub = Ed25519PrivateKey.generate()
        self.ingest = X25519PrivateKey.generate()
        self.signing = Ed25519PrivateKey.generate()

    def uplink(self) -> UplinkKeys:
        return UplinkKeys(
            hub_identity=self.hub,
            cloud_ingest=self.ingest.public_key(),
            cloud_signing=self.signing.public_key(),
        )

    def save_hub_side(self, directory: Path) -> list[str]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = [
            directory / "identity.ed25519.pem",
            directory / "cloud-ingest.pub.pem",
            directory / "cloud-signing.pub.pem",
        ]
        save_private_key(self.hub, paths[0])
        save_public_key(self.ingest, paths[1])
        save_public_key(self.signing, paths[2])
        return [str(p) for p in paths]


def make_record(revision: int, payload: dict, rid: UUID) -> MedicalRecord:
    checked = check(
        {
            "id": str(rid),
            "revision": revision,
            "updated_at": "2026-11-28T09:30:00Z",
            "patient_id": "pat-42",
            "agent_id": "agent-17",
            "type": "antenatal_visit",
            "payload": payload,
            "content_hash": content_hash(payload),
        }
    )
    assert isinstance(checked, MedicalRecord)
    return checked


def make_triage(band: RiskBand, at: datetime) -> TriageResult:
    high = band is RiskBand.HIGH
    return TriageResult(
        id=uuid4(),
        patient_id="pat-42",
        reading_ids=(uuid4(),),
        computed_at=at,
        band=band,
        score=9.0 if high else 1.0,
        news2_score=9 if high else 1,
        news2_subscores={"pulse": 3 if high else 1},
        complete=True,
        model_version="news2-1",
        input_hash="sha256:" + "2" * 64,
    )


@contextlib.asynccontextmanager
async def running_ingestor(broker_url: str, db: str, s3_endpoint: str, bucket: str, keys: Keys):
    """An `Ingestor` in this event loop until the block ends (as tests/cloud/ingest run it)."""
    pool = open_pool(DatabaseSettings(url=db, pool_max=2))
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    ingestor = Ingestor(
        broker=Broker.from_url(broker_url),
        ports=StoragePorts(pool, Archive(s3, bucket), db_timeout=2.0),
        cloud_keys=keys.ingest,
        signing_key=keys.signing,
        metrics=IngestMetrics(CollectorRegistry()),
    )
    stop = asyncio.Event()
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


def uplink_config(hub_id: str, port: int) -> UplinkConfig:
    return UplinkConfig(
        hub_id=hub_id,
        broker_url=f"mqtt://127.0.0.1:{port}",
        batch=BatchLimits(max_items=500, max_age=0.05),
        window=1,
        ack_timeout_s=5.0,
        idle_poll_s=0.05,
        reconnect=Backoff(base=0.05, cap=0.3),
        probe=Backoff(base=0.1, cap=0.5),
        timeout_s=3.0,
    )


async def eventually(cond, *, what: str, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(cond):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def rows(db: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(db, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


async def fill(buffer: Buffer, n: int) -> set[str]:
    rng = random.Random(11)
    items = []
    for i in range(n):
        r = sample_reading(rng, T0 + timedelta(seconds=i), device=i % 5, patient=i % 13)
        items.append(NewReading(r, f"dev/{i}", 1))
    await buffer.insert_many(items)
    return {str(i.reading.id) for i in items}


async def test_records_and_triage_reach_postgres_once_high_triage_first(
    tmp_path, db, mosquitto, s3_endpoint, s3_bucket
) -> None:
    keys, hub_id = Keys(), f"hub-rec-{uuid4().hex[:8]}"
    with connect(db) as conn:
        add_hub(conn, hub_id, keys.hub.public_key())
    rid = uuid4()
    first = make_record(1, {"weeks": 31}, rid)
    rival = make_record(1, {"weeks": 32}, rid)  # same id and revision, other content
    newer = make_record(2, {"weeks": 33}, rid)
    low = make_triage(RiskBand.LOW, NOW)
    high = make_triage(RiskBand.HIGH, NOW + timedelta(seconds=1))

    async with Buffer.open(BufferConfig(path=tmp_path / "buffer.sqlite3")) as buffer:
        readings = await fill(buffer, 5000)
        await buffer.sync_records([first], NOW)
        await buffer.sync_records([rival, newer], NOW)
        assert await buffer.add_triage([low]) == 1
        assert await buffer.add_triage([high]) == 1  # added while the 5,000 readings wait
        service = UplinkService(uplink_config(hub_id, mosquitto.port), buffer, keys.uplink())
        async with running_ingestor(mosquitto.url, db, s3_endpoint, s3_bucket, keys):
            task = asyncio.create_task(service.run())
            try:
                await eventually(
                    lambda: buffer.uplink_status().unsent == 0, what="everything acknowledged"
                )
            finally:
                service.request_stop()
                await asyncio.wait_for(task, 15)
        stats = buffer.stats()
        assert (stats.unsent, stats.records.unsent, stats.triage.unsent) == (0, 0, 0)

    # The first batch the hub sent (lowest seq) is the high-band result, at alert priority.
    (first_batch,) = rows(
        db, "SELECT batch_id, priority FROM batches WHERE hub_id = %s ORDER BY seq LIMIT 1", hub_id
    )
    (high_batch,) = rows(db, "SELECT batch_id FROM triage_results WHERE id = %s", high.id)
    assert high_batch[0] == first_batch[0]
    assert first_batch[1] == "alert"
    # Everything exactly once.
    assert {str(r[0]) for r in rows(db, "SELECT id FROM readings")} == readings
    assert rows(db, "SELECT count(*) FROM readings") == [(5000,)]
    assert sorted(r[0] for r in rows(db, "SELECT id FROM triage_results")) == sorted(
        [low.id, high.id]
    )
    stored = rows(
        db,
        "SELECT revision, content_hash, has_conflict FROM medical_records WHERE id = %s"
        " ORDER BY revision",
        rid,
    )
    assert [(r[0], r[2]) for r in stored] == [(1, True), (2, False)]
    assert stored[1][1] == newer.content_hash
    conflicts = rows(
        db, "SELECT revision, content_hash, flags FROM record_conflicts WHERE id = %s", rid
    )
    assert len(conflicts) == 1
    assert {stored[0][1], conflicts[0][1]} == {first.content_hash, rival.content_hash}
    assert "conflict" in conflicts[0][2]

    _operators_see_it(db, rid, conflicts[0][1])


def _operators_see_it(db: str, rid: UUID, conflict_hash: str) -> None:
    """`tecsa-cloud records show/conflicts` on the rows the pipeline stored."""
    runner = CliRunner()
    shown = runner.invoke(cloud_app, ["records", "show", str(rid), "--json", "--database-url", db])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert [(r["revision"], r["has_conflict"]) for r in doc["revisions"]] == [(2, False), (1, True)]
    assert [c["content_hash"] for c in doc["conflicts"]] == [conflict_hash]
    listed = runner.invoke(cloud_app, ["records", "conflicts", "--json", "--database-url", db])
    assert listed.exit_code == 0, listed.output
    assert [(c["id"], c["revision"]) for c in json.loads(listed.output)] == [(str(rid), 1)]
    text = runner.invoke(cloud_app, ["records", "show", str(rid), "--database-url", db])
    assert "CONFLICT" in text.output
    missing = runner.invoke(cloud_app, ["records", "show", str(uuid4()), "--database-url", db])
    assert missing.exit_code == 2
    assert "no record" in missing.output
    bad = runner.invoke(cloud_app, ["records", "show", "1; DROP TABLE x", "--database-url", db])
    assert bad.exit_code == 2
    assert "not a UUID" in bad.output


def _hub_outbox(path: Path) -> list[tuple[str, str, int]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT batch_id, state, attempts FROM outbox ORDER BY seq").fetchall()


def _sealed(path: Path) -> list[bytes]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return [
            bytes(r[0]) for r in conn.execute("SELECT sealed FROM outbox WHERE state = 'in_flight'")
        ]


def _start_hub(path: Path, key_files: list[str], hub_id: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = path.with_suffix(".log").open("a")
    return subprocess.Popen(
        [sys.executable, str(HUB_PROCESS), str(path), *key_files, hub_id, str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )


async def test_batch_republished_after_a_hub_kill_stores_nothing_twice(
    tmp_path, db, mosquitto, s3_endpoint, s3_bucket
) -> None:
    keys, hub_id = Keys(), f"hub-kill-{uuid4().hex[:8]}"
    key_files = keys.save_hub_side(tmp_path / "keys")
    with connect(db) as conn:
        add_hub(conn, hub_id, keys.hub.public_key())
    path = tmp_path / "buffer.sqlite3"
    rid = uuid4()
    records = [make_record(1, {"w": 1}, rid), make_record(1, {"w": 2}, rid)]  # a conflict
    records += [make_record(1, {"n": i}, uuid4()) for i in range(30)]
    triage = [make_triage(RiskBand.HIGH, NOW), make_triage(RiskBand.MEDIUM, NOW)]
    async with Buffer.open(BufferConfig(path=path)) as buffer:
        await buffer.sync_records(records, NOW)
        await buffer.add_triage(triage)

    # 1. The hub publishes while no cloud listens, and is SIGKILLed before any ack came.
    hub = _start_hub(path, key_files, hub_id, mosquitto.port)
    try:
        await eventually(
            lambda: sum(1 for _b, state, n in _hub_outbox(path) if state == "in_flight" and n) >= 3,
            what="batches published",
        )
    finally:
        hub.send_signal(signal.SIGKILL)
        hub.wait(timeout=30)
    published = _hub_outbox(path)
    assert all(state == "in_flight" for _b, state, _n in published)

    async with running_ingestor(mosquitto.url, db, s3_endpoint, s3_bucket, keys):
        # 2. Those bytes did reach the cloud before the kill (the cloud stored them; the acks
        #    were lost with the hub): deliver them as the broker would have.
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            for data in _sealed(path):
                await client.publish(batch_topic(hub_id), data, qos=1)
        await eventually(
            lambda: (
                rows(db, "SELECT count(*) FROM batches WHERE hub_id = %s", hub_id)[0][0]
                == len(published)
            ),
            what="the first copies stored",
        )
        # The acks went to the dead hub's session; drop it, as a lost ack would be.
        async with aiomqtt.Client(
            "127.0.0.1", mosquitto.port, identifier=f"tecsa-hub-{hub_id}", clean_session=True
        ):
            pass
        before = rows(db, "SELECT count(*) FROM medical_records")[0][0]
        before += rows(db, "SELECT count(*) FROM record_conflicts")[0][0]
        assert before == len(records)

        # 3. The restarted hub republishes the same bytes and sends the rest; the cloud
        #    answers the copies as duplicates.
        hub = _start_hub(path, key_files, hub_id, mosquitto.port)
        try:
            await eventually(
                lambda: (
                    all(state == "acked" for _b, state, _n in _hub_outbox(path))
                    and _unsent(path) == 0
                ),
                what="the restarted hub delivering everything",
            )
        finally:
            hub.send_signal(signal.SIGTERM)
            hub.wait(timeout=30)

    after = _hub_outbox(path)
    republished = {b for b, _s, n in after if n >= 2}
    assert republished >= {b for b, _s, _n in published}  # every published batch went again
    assert rows(db, "SELECT count(*) FROM medical_records")[0][0] == len(records) - 1
    assert rows(db, "SELECT count(*) FROM record_conflicts WHERE id = %s", rid)[0][0] == 1
    assert rows(db, "SELECT count(*) FROM triage_results")[0][0] == len(triage)
    batches = rows(db, "SELECT batch_id FROM batches WHERE hub_id = %s", hub_id)
    assert len(batches) == len(after)  # one row per batch, however often it was published


def _unsent(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return sum(
            conn.execute(sql).fetchone()[0]
            for sql in (
                "SELECT count(*) FROM records WHERE batch_id IS NULL",
                "SELECT count(*) FROM triage WHERE batch_id IS NULL",
            )
        )
