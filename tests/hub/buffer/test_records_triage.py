"""Schema version 5: medical records and triage results are deliverable items, like readings."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from buffer_testkit import T0, new
from typer.testing import CliRunner

from hub.buffer import BatchConflict, Buffer, BufferConfig, BufferFull, Priority
from hub.buffer.cli import buffer_app
from hub.buffer.schema import APPLICATION_ID, MIGRATIONS
from hub.buffer.values import ItemKind, OutboxState
from hub.records.merge import Outcome, check
from wire.canonical import content_hash
from wire.items import MedicalRecord, RiskBand, TriageResult

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
RID = UUID("019ac990-0000-7000-8000-00000000000a")


def record(revision: int = 1, payload: dict | None = None, rid: UUID = RID) -> MedicalRecord:
    payload = payload or {"weeks": 31}
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


def triage(
    band: RiskBand = RiskBand.LOW,
    *,
    at: datetime = NOW,
    patient: str | None = "pat-42",
    readings: tuple[UUID, ...] = (),
) -> TriageResult:
    return TriageResult(
        id=uuid4(),
        patient_id=patient,
        reading_ids=readings,
        computed_at=at,
        band=band,
        score=7.0 if band is RiskBand.HIGH else 1.0,
        news2_score=7 if band is RiskBand.HIGH else 1,
        news2_subscores={"pulse": 1},
        complete=True,
        model_version="news2-1+m1",
        input_hash="sha256:" + "0" * 64,
    )


async def test_add_triage_is_idempotent_durable_and_queries_it(config, make_reading) -> None:
    reading = make_reading(patient=42)
    low = triage(RiskBand.LOW, at=NOW, readings=(reading.id,))
    high = triage(RiskBand.HIGH, at=NOW + timedelta(minutes=1), readings=(reading.id,))
    other = triage(RiskBand.MEDIUM, at=NOW + timedelta(minutes=2), patient="pat-7")
    async with Buffer.open(config) as buffer:
        assert await buffer.add_triage([low, high]) == 2
        assert await buffer.add_triage([low, high, other]) == 1  # by id: only `other` is new
        assert await buffer.add_triage([]) == 0
        # From a thread (an inference worker), blocking until durable.
        late = triage(RiskBand.LOW, at=NOW - timedelta(minutes=1))
        assert await asyncio.to_thread(buffer.sync.add_triage, [late, low]) == 1
    async with Buffer.open(config) as buffer:  # durable: a new process sees them
        by_reading = buffer.triage_for_readings([reading.id, uuid4()])
        assert by_reading == {reading.id: [high, low]}  # newest first; unknown ids absent
        assert buffer.recent_triage() == [other, high, low, late]
        assert buffer.recent_triage(limit=1) == [other]
        assert buffer.recent_triage(min_band=RiskBand.MEDIUM) == [other, high]
        assert buffer.recent_triage(patient_id="pat-42") == [high, low, late]
        assert buffer.recent_triage(patient_id="pat-42", min_band=RiskBand.HIGH) == [high]
        with pytest.raises(ValueError, match="limit"):
            buffer.recent_triage(limit=0)
        # The high band is queued at alert priority, ahead of everything else.
        items = buffer.unsent_items()
        assert [i.priority for i in items] == [Priority.ALERT] + [Priority.ROUTINE] * 3
        assert items[0].key == (str(high.id),)
        assert TriageResult.model_validate_json(items[0].json) == high


async def test_readings_for_patient_oldest_first_after_since(buffer, make_reading) -> None:
    mine = [make_reading(patient=5, at=T0 + timedelta(seconds=i)) for i in range(5)]
    others = [make_reading(patient=6, at=T0 + timedelta(seconds=i)) for i in range(3)]
    await buffer.insert_many([new(r) for r in [*others, *reversed(mine)]])
    patient = mine[0].patient_id
    assert patient is not None
    assert buffer.readings_for_patient(patient, since=None, limit=100) == mine
    assert buffer.readings_for_patient(patient, since=mine[1].received_at, limit=2) == mine[2:4]
    assert buffer.readings_for_patient("nobody", since=None, limit=10) == []


async def test_items_travel_in_batches_and_are_delivered_only_on_the_ack(buffer) -> None:
    first = record(1)
    await buffer.sync_records([first], NOW)
    (rival,) = await buffer.sync_records([record(1, {"weeks": 32})], NOW)
    assert rival.outcome is Outcome.CONFLICT
    high = triage(RiskBand.HIGH)
    await buffer.add_triage([high, triage(RiskBand.LOW)])

    items = buffer.unsent_items()
    kinds = [i.kind for i in items]
    assert kinds == [
        ItemKind.TRIAGE_RESULT,  # high band: alert
        ItemKind.MEDICAL_RECORD,
        ItemKind.MEDICAL_RECORD,
        ItemKind.TRIAGE_RESULT,
    ]
    # Both versions of the conflict are unsent and carry the conflict flag to the cloud.
    sent = [MedicalRecord.model_validate_json(i.json) for i in items[1:3]]
    assert {r.content_hash for r in sent} == {first.content_hash, rival.record.content_hash}
    assert all("conflict" in r.flags for r in sent)

    total_bytes = buffer.unsent_bytes
    assert total_bytes > 0
    assert total_bytes == buffer.stats().unsent_bytes
    stats = buffer.stats()
    assert (stats.records.total, stats.records.unsent) == (2, 2)
    assert (stats.triage.total, stats.triage.unsent) == (2, 2)
    status = buffer.uplink_status()
    assert (status.unsent, status.waiting) == (4, 4)
    assert (status.unsent_records, status.unsent_triage) == (2, 2)

    # A batch takes the high triage result and one record version, in one transaction.
    batch_id = uuid4()
    taken = [items[0], items[1]]
    outbox = await buffer.record_batch(
        batch_id=batch_id,
        priority=0,
        created_at=NOW,
        readings=(),
        items=taken,
        seal=lambda seq: b"sealed-%d" % seq,
    )
    assert outbox.readings == 2
    assert [i.key for i in buffer.unsent_items()] == [items[2].key, items[3].key]
    status = buffer.uplink_status()
    assert (status.unsent, status.waiting, status.in_flight_batches) == (4, 2, 1)
    assert buffer.unsent_bytes == total_bytes  # in flight is still unsent

    # Taking an item already in a batch records nothing at all.
    with pytest.raises(BatchConflict):
        await buffer.record_batch(
            batch_id=uuid4(),
            priority=1,
            created_at=NOW,
            readings=(),
            items=[items[1], items[3]],
            seal=lambda _seq: b"x",
        )
    assert len(buffer.unsent_items()) == 2
    assert buffer.uplink_status().in_flight_batches == 1

    ack = await buffer.ack_batch(batch_id, seq=outbox.seq, status="stored", reason=None, at=NOW)
    assert ack.delivered == 2
    stats = buffer.stats()
    assert (stats.records.total, stats.records.unsent) == (2, 1)
    assert (stats.triage.total, stats.triage.unsent) == (2, 1)
    delivered_record = first if items[1].key[2] == first.content_hash else rival.record
    assert buffer.unsent_bytes == total_bytes - items[0].nbytes - _stored_bytes(delivered_record)
    assert buffer.unsent_bytes == stats.unsent_bytes
    assert buffer.uplink_status().unsent == 2


def _stored_bytes(r: MedicalRecord) -> int:
    return len(r.model_dump_json().encode())


async def test_release_returns_items_and_prune_waits_for_delivery_and_retention(
    config, make_reading
) -> None:
    config = BufferConfig(path=config.path, retention=timedelta(days=1))
    async with Buffer.open(config) as buffer:
        reading = make_reading()
        await buffer.sync_records([record(1)], NOW)
        await buffer.add_triage([triage(readings=(reading.id,))])
        await buffer.insert(reading, dedupe_key="k1")
        items = buffer.unsent_items()
        rows = buffer.unsent_rows()
        released_id = uuid4()
        await buffer.record_batch(
            batch_id=released_id,
            priority=1,
            created_at=NOW,
            readings=rows,
            items=items,
            seal=lambda _seq: b"s",
        )
        assert buffer.unsent_items() == []
        assert await buffer.release_batch(released_id) == 3  # a reading, a record, a triage
        assert [i.key for i in buffer.unsent_items()] == [i.key for i in items]

        delivered_id = uuid4()
        outbox = await buffer.record_batch(
            batch_id=delivered_id,
            priority=1,
            created_at=NOW,
            readings=buffer.unsent_rows(),
            items=buffer.unsent_items(),
            seal=lambda _seq: b"s",
        )
        await buffer.ack_batch(delivered_id, seq=outbox.seq, status="stored", reason=None, at=NOW)
        assert buffer.unsent_bytes == 0
        # Another waiting record: never pruned, whatever its age.
        await buffer.sync_records([record(1, rid=uuid4())], NOW - timedelta(days=30))
        await buffer.prune(now=NOW + timedelta(hours=1))  # delivered, but within retention
        assert (buffer.stats().records.total, buffer.stats().triage.total) == (2, 1)
        await buffer.prune(now=NOW + timedelta(days=2))
        stats = buffer.stats()
        assert (stats.records.total, stats.records.unsent) == (1, 1)
        assert (stats.triage.total, stats.triage.unsent) == (0, 0)
        assert buffer.triage_for_readings([reading.id]) == {}  # its links went with it


async def test_records_count_toward_the_capacity_cap(tmp_path, make_reading) -> None:
    two = [record(1), record(2, {"weeks": 33})]
    cap = sum(_stored_bytes(r) for r in two) - 1
    config = BufferConfig(path=tmp_path / "b.sqlite3", max_unsent_bytes=cap)
    async with Buffer.open(config) as buffer:
        await buffer.sync_records(two[:1], NOW)
        assert not buffer.at_capacity
        await buffer.sync_records(two[1:], NOW)
        assert buffer.unsent_bytes == cap + 1
        assert buffer.at_capacity  # the API answers 507 from this
        with pytest.raises(BufferFull):
            await buffer.insert(make_reading(), dedupe_key="k")
    async with Buffer.open(config) as buffer:  # the backlog is recounted on open
        assert buffer.at_capacity


def _v4_file(path, records: list[tuple[MedicalRecord, int]]) -> None:
    """A version 4 buffer built by the v4 migrations, holding unsent records."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN")
        for migration in MIGRATIONS[:4]:
            for statement in migration:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 4")
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        for rec, conflict in records:  # as the v4 code's _insert_record wrote them
            conn.execute(
                "INSERT INTO records (id, revision, content_hash, patient_id, agent_id, type,"
                " updated_at, received_at, conflict, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(rec.id),
                    rec.revision,
                    rec.content_hash,
                    rec.patient_id,
                    rec.agent_id,
                    rec.type,
                    rec.updated_at.isoformat(),
                    NOW.isoformat(),
                    conflict,
                    rec.model_dump_json(),
                ),
            )
        conn.execute("COMMIT")


async def test_a_v4_file_with_unsent_records_migrates(tmp_path) -> None:
    path = tmp_path / "v4.sqlite3"
    first, rival, other = record(1), record(1, {"weeks": 40}), record(3, rid=uuid4())
    _v4_file(path, [(first, 1), (rival, 1), (other, 0)])
    async with Buffer.open(BufferConfig(path=path)) as buffer:
        expected = sum(_stored_bytes(r) for r in (first, rival, other))
        assert buffer.unsent_bytes == expected
        stats = buffer.stats()
        assert (stats.records.total, stats.records.unsent) == (3, 3)
        assert stats.unsent_bytes == expected
        items = buffer.unsent_items()
        assert {i.key[0] for i in items} == {str(first.id), str(other.id)}
        flagged = [MedicalRecord.model_validate_json(i.json) for i in items]
        assert sum("conflict" in r.flags for r in flagged) == 2
        by_hash = sorted([first, rival], key=lambda r: r.content_hash)  # same received_at
        assert buffer.latest_record(first.id) == by_hash
        assert buffer.latest_record(other.id) == [other]
        assert buffer.latest_record(uuid4()) == []
        # Deliverable after the migration: batch and ack them like new ones.
        batch_id = uuid4()
        outbox = await buffer.record_batch(
            batch_id=batch_id,
            priority=1,
            created_at=NOW,
            readings=(),
            items=items[:1],
            seal=lambda _seq: b"s",
        )
        assert buffer.outbox_batch(batch_id) is not None
        assert outbox.state is OutboxState.IN_FLIGHT
        await buffer.ack_batch(batch_id, seq=outbox.seq, status="stored", reason=None, at=NOW)
        assert buffer.stats().records.unsent == 2


async def test_buffer_stats_cli_shows_records_and_triage(config) -> None:
    async with Buffer.open(config) as buffer:
        await buffer.sync_records([record(1)], NOW)
        await buffer.add_triage([triage(RiskBand.HIGH), triage()])
    runner = CliRunner()
    result = runner.invoke(buffer_app, ["stats", "--db", str(config.path)])
    assert result.exit_code == 0, result.output
    assert "medical records" in result.output
    assert "triage results" in result.output
    as_json = runner.invoke(buffer_app, ["stats", "--db", str(config.path), "--json"])
    assert '"records": {' in as_json.output
    assert '"triage": {' in as_json.output
