"""store_batch against a real PostgreSQL: whole values in, whole values out, exactly once."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from db_support import (
    HUB_ID,
    count,
    header_for,
    stored_audit,
    stored_readings,
    stored_records,
    stored_triage,
    wait_for_waiter,
)

from cloud.db import (
    DatabaseError,
    DatabaseUnavailable,
    DataRefused,
    KindCounts,
    SchemaError,
    StoreResult,
    UnknownHub,
    connect,
    loader,
    quarantine_batch,
    reject_batch,
    store_batch,
)
from wire import AuditEvent, Body, MedicalRecord, RiskBand, TriageResult
from wire.samples import sample_batch_id, sample_body

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
RECEIVED = NOW + timedelta(seconds=5)
ITEM_TABLES = ("readings", "medical_records", "triage_results", "audit_events")


def _record(rid, revision=1, *, text="seen at home", seed=0):
    payload = {"note": text, "vitals": {"bp": [120, 80]}, "tags": ["á", "b"], "n": None}
    digest = f"{seed:064x}"
    return MedicalRecord(
        id=rid,
        revision=revision,
        updated_at=NOW - timedelta(hours=1),
        patient_id="pat-000001",
        agent_id="agent-7",
        type="visit_note",
        payload=payload,
        content_hash=f"sha256:{digest}",
        flags=("conflict",) if seed % 2 else (),
    )


def _mixed_body(rng, n=50):
    readings = sample_body(n, rng, NOW).readings
    triage = TriageResult(
        id=UUID(int=rng.getrandbits(128)),
        patient_id="pat-000001",
        reading_ids=tuple(r.id for r in readings[:3]),
        computed_at=NOW,
        band=RiskBand.MEDIUM,
        score=0.4375,
        news2_score=5,
        news2_subscores={"respiration_rate": 2, "spo2": 3},
        complete=False,
        model_version="edge-2026.03",
        input_hash="sha256:" + "ab" * 32,
    )
    audit = AuditEvent(
        id=UUID(int=rng.getrandbits(128)),
        at=NOW,
        actor="tech-3",
        action="device_paired",
        detail={"device": "ble-bloo-0001", "ok": True, "rssi": -61.5},
    )
    records = (_record(UUID(int=rng.getrandbits(128))), _record(UUID(int=rng.getrandbits(128))))
    return Body(
        readings=readings, medical_records=records, triage_results=(triage,), audit_events=(audit,)
    )


def _store(conn, body, hub_key, rng, *, batch_id=None, seq=1):
    header = header_for(
        body,
        hub_id=HUB_ID,
        hub_key=hub_key,
        batch_id=batch_id or sample_batch_id(rng, NOW),
        seq=seq,
    )
    result = store_batch(
        conn, header, body, s3_key=f"raw/{HUB_ID}/{header.batch_id}", received_at=RECEIVED
    )
    return header, result


def _counts(conn):
    return {t: count(conn, t) for t in (*ITEM_TABLES, "batches", "record_conflicts")}


@pytest.mark.usefixtures("hub")
def test_a_stored_batch_reads_back_as_exactly_the_body(conn, hub_key):
    rng = random.Random(1)
    body = _mixed_body(rng)
    header, result = _store(conn, body, hub_key, rng)
    assert result == StoreResult(
        status="stored",
        readings=KindCounts(inserted=50),
        medical_records=KindCounts(inserted=2),
        triage_results=KindCounts(inserted=1),
        audit_events=KindCounts(inserted=1),
    )
    assert result.inserted == 54
    assert stored_readings(conn) == sorted(body.readings, key=lambda r: r.id)
    assert stored_readings(conn, batch_id=header.batch_id, hub_id=HUB_ID) == stored_readings(conn)
    assert stored_records(conn) == sorted(body.medical_records, key=lambda r: r.id)
    assert stored_triage(conn) == list(body.triage_results)
    assert stored_audit(conn) == list(body.audit_events)
    row = conn.execute(
        "SELECT hub_id, seq, status, reason, priority, s3_key, received_at, count_readings,"
        " readings_inserted, readings_duplicate, medical_records_inserted,"
        " triage_results_inserted, audit_events_inserted FROM batches WHERE batch_id = %s",
        (header.batch_id,),
    ).fetchone()
    assert row == (
        HUB_ID,
        1,
        "stored",
        None,
        "routine",
        f"raw/{HUB_ID}/{header.batch_id}",
        RECEIVED,
        50,
        50,
        0,
        2,
        1,
        1,
    )


@pytest.mark.usefixtures("hub")
def test_the_same_batch_again_is_a_duplicate_and_touches_nothing(conn, hub_key):
    rng = random.Random(2)
    body = _mixed_body(rng)
    header, _ = _store(conn, body, hub_key, rng)
    before = _counts(conn)
    batch_row = conn.execute("SELECT * FROM batches").fetchall()
    again = store_batch(conn, header, body, s3_key="raw/elsewhere", received_at=RECEIVED)
    assert again == StoreResult(
        status="duplicate",
        readings=KindCounts(duplicate=50),
        medical_records=KindCounts(duplicate=2),
        triage_results=KindCounts(duplicate=1),
        audit_events=KindCounts(duplicate=1),
    )
    assert _counts(conn) == before
    assert conn.execute("SELECT * FROM batches").fetchall() == batch_row


@pytest.mark.usefixtures("hub")
def test_items_already_stored_by_another_batch_count_as_duplicates(conn, hub_key):
    rng = random.Random(3)
    first = sample_body(200, rng, NOW)
    first_header, _ = _store(conn, first, hub_key, rng)
    fresh = sample_body(300, rng, NOW + timedelta(minutes=1)).readings
    second = Body(readings=first.readings[:120] + fresh)
    second_header, result = _store(conn, second, hub_key, rng, seq=2)
    assert result.status == "stored"
    assert result.readings == KindCounts(inserted=300, duplicate=120)
    assert count(conn, "readings") == 500
    # the rows keep the batch that delivered them first
    assert len(stored_readings(conn, batch_id=first_header.batch_id)) == 200
    assert stored_readings(conn, batch_id=second_header.batch_id) == sorted(
        fresh, key=lambda r: r.id
    )
    row = conn.execute(
        "SELECT readings_inserted, readings_duplicate FROM batches WHERE batch_id = %s",
        (second_header.batch_id,),
    ).fetchone()
    assert row == (300, 120)


@pytest.mark.usefixtures("hub")
def test_two_ingestors_storing_the_same_batch_at_once_store_it_once(db, hub_key):
    rng = random.Random(4)
    body = sample_body(500, rng, NOW)
    header = header_for(body, hub_id=HUB_ID, hub_key=hub_key, batch_id=sample_batch_id(rng, NOW))
    barrier = threading.Barrier(2)
    results: list[StoreResult] = []
    errors: list[BaseException] = []

    def ingest():
        with connect(db) as c:
            barrier.wait(timeout=10)
            try:
                results.append(store_batch(c, header, body, s3_key="k", received_at=RECEIVED))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

    threads = [threading.Thread(target=ingest) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sorted(r.status for r in results) == ["duplicate", "stored"]
    with connect(db) as c:
        assert count(c, "readings") == 500
        assert count(c, "batches") == 1


def _race(db, hub_key, *, first_dies):
    """Ingestor A claims the batch and is held inside its transaction; B then tries the same."""
    rng = random.Random(5)
    body = sample_body(100, rng, NOW)
    header = header_for(body, hub_id=HUB_ID, hub_key=hub_key, batch_id=sample_batch_id(rng, NOW))
    outcomes: dict[str, object] = {}

    def ingest(name):
        with connect(db) as c:
            try:
                outcomes[name] = store_batch(c, header, body, s3_key=name, received_at=RECEIVED)
            except DatabaseError as exc:
                outcomes[name] = exc

    with connect(db) as gate, connect(db) as watcher:
        gate.autocommit = False
        gate.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")  # holds A after its claim
        a = threading.Thread(target=ingest, args=("a",))
        a.start()
        a_pid = wait_for_waiter(watcher, event="relation")
        b = threading.Thread(target=ingest, args=("b",))
        b.start()
        wait_for_waiter(watcher, event="transactionid")  # B waits for A's claim on the batch row
        if first_dies:
            watcher.execute("SELECT pg_terminate_backend(%s)", (a_pid,))
            a.join(timeout=10)
        gate.rollback()
        a.join(timeout=10)
        b.join(timeout=10)
    return outcomes


@pytest.mark.usefixtures("hub")
def test_a_racing_second_ingestor_waits_for_the_first_and_reports_a_duplicate(db, hub_key):
    outcomes = _race(db, hub_key, first_dies=False)
    assert outcomes["a"].status == "stored"
    assert outcomes["b"].status == "duplicate"
    with connect(db) as c:
        assert count(c, "readings") == 100
        assert c.execute("SELECT s3_key FROM batches").fetchall() == [("a",)]


@pytest.mark.usefixtures("hub")
def test_when_the_first_ingestor_dies_mid_batch_the_waiting_one_stores_it(db, hub_key):
    outcomes = _race(db, hub_key, first_dies=True)
    assert isinstance(outcomes["a"], DatabaseUnavailable)
    assert outcomes["b"].status == "stored"
    with connect(db) as c:
        assert count(c, "readings") == 100
        assert c.execute("SELECT s3_key FROM batches").fetchall() == [("b",)]


@pytest.mark.usefixtures("hub")
def test_record_revisions_are_kept_and_a_differing_copy_is_stored_aside(conn, hub_key):
    rng = random.Random(6)
    rid = UUID(int=rng.getrandbits(128))
    rev1, rev2 = _record(rid, 1, seed=1), _record(rid, 2, text="follow-up", seed=2)
    _, first = _store(conn, Body(medical_records=(rev1, rev2)), hub_key, rng)
    assert first.medical_records == KindCounts(inserted=2)

    other = _record(rid, 2, text="edited on another phone", seed=3)
    _, second = _store(conn, Body(medical_records=(rev1, other)), hub_key, rng, seq=2)
    assert second.medical_records == KindCounts(inserted=0, duplicate=1)
    assert second.record_conflicts == 1
    assert stored_records(conn) == [rev1, rev2]
    assert stored_records(conn, "record_conflicts") == [other]
    flagged = conn.execute(
        "SELECT revision, has_conflict FROM medical_records ORDER BY revision"
    ).fetchall()
    assert flagged == [(1, False), (2, True)]

    _, third = _store(conn, Body(medical_records=(other,)), hub_key, rng, seq=3)
    assert third.medical_records == KindCounts(duplicate=1)
    assert third.record_conflicts == 0
    assert count(conn, "record_conflicts") == 1
    row = conn.execute(
        "SELECT medical_records_inserted, medical_records_duplicate, medical_records_conflict"
        " FROM batches ORDER BY seq"
    ).fetchall()
    assert row == [(2, 0, 0), (0, 1, 1), (0, 1, 0)]


@pytest.mark.usefixtures("hub")
def test_an_empty_batch_is_recorded_as_stored(conn, hub_key):
    rng = random.Random(7)
    _, result = _store(conn, Body(), hub_key, rng)
    assert result.status == "stored"
    assert result.inserted == 0
    assert count(conn, "batches") == 1


def test_a_batch_from_an_unregistered_hub_is_refused_and_nothing_is_stored(conn, hub_key):
    rng = random.Random(8)
    with pytest.raises(UnknownHub) as caught:
        _store(conn, sample_body(5, rng, NOW), hub_key, rng)
    assert caught.value.hub_id == HUB_ID
    assert _counts(conn) == dict.fromkeys(_counts(conn), 0)


@pytest.mark.usefixtures("hub")
def test_content_postgresql_refuses_rolls_the_whole_batch_back(conn, hub_key):
    rng = random.Random(9)
    bad = _record(UUID(int=rng.getrandbits(128)), text="nul \x00 inside")
    body = Body(readings=sample_body(10, rng, NOW).readings, medical_records=(bad,))
    with pytest.raises(DataRefused) as caught:
        _store(conn, body, hub_key, rng)
    assert not caught.value.retryable
    assert _counts(conn) == dict.fromkeys(_counts(conn), 0)
    _, result = _store(conn, sample_body(10, rng, NOW), hub_key, rng)
    assert result.readings == KindCounts(inserted=10)


@pytest.mark.usefixtures("hub")
def test_store_batch_refuses_to_run_inside_a_transaction_it_cannot_commit(conn, hub_key):
    rng = random.Random(10)
    body = sample_body(3, rng, NOW)
    header = header_for(body, hub_id=HUB_ID, hub_key=hub_key, batch_id=sample_batch_id(rng, NOW))
    with conn.transaction(), pytest.raises(DatabaseError, match="autocommit"):
        store_batch(conn, header, body, s3_key="k", received_at=RECEIVED)


def test_quarantine_keeps_what_the_header_claimed_and_trusts_none_of_it(conn):
    batch_id = UUID("01950000-0000-7000-8000-000000000001")
    first = quarantine_batch(
        conn,
        hub_id="hub-nobody",
        batch_id=batch_id,
        reason="IntegrityError: signature does not verify",
        s3_key="raw/hub-nobody/2026/03/14/x",
        size=1234,
        received_at=RECEIVED,
    )
    second = quarantine_batch(
        conn,
        hub_id=None,
        batch_id=None,
        reason="DecodeError: bad magic",
        s3_key="quarantine/2026/03/14/y",
        size=92,
        received_at=RECEIVED,
    )
    assert second > first
    rows = conn.execute(
        "SELECT id, received_at, hub_id, batch_id, reason, s3_key, size FROM quarantine ORDER BY id"
    ).fetchall()
    assert rows == [
        (
            first,
            RECEIVED,
            "hub-nobody",
            batch_id,
            "IntegrityError: signature does not verify",
            "raw/hub-nobody/2026/03/14/x",
            1234,
        ),
        (second, RECEIVED, None, None, "DecodeError: bad magic", "quarantine/2026/03/14/y", 92),
    ]
    assert count(conn, "batches") == 0


@pytest.mark.usefixtures("hub")
def test_a_rejected_authentic_batch_is_decided_once(conn, hub_key):
    rng = random.Random(11)
    body = sample_body(4, rng, NOW)
    header = header_for(body, hub_id=HUB_ID, hub_key=hub_key, batch_id=sample_batch_id(rng, NOW))
    args = {"reason": "counts differ", "s3_key": "raw/x", "size": 900, "received_at": RECEIVED}
    assert reject_batch(conn, header, **args) is True
    assert reject_batch(conn, header, **args) is False
    assert conn.execute("SELECT status, reason FROM batches").fetchall() == [
        ("rejected", "counts differ")
    ]
    assert count(conn, "quarantine") == 1
    result = store_batch(conn, header, body, s3_key="raw/x", received_at=RECEIVED)
    assert result.status == "duplicate"
    assert count(conn, "readings") == 0


def test_storing_into_a_database_without_the_schema_says_to_upgrade(empty_db, hub_key):
    rng = random.Random(12)
    body = sample_body(2, rng, NOW)
    header = header_for(body, hub_id=HUB_ID, hub_key=hub_key, batch_id=sample_batch_id(rng, NOW))
    with connect(empty_db) as c, pytest.raises(SchemaError, match="db upgrade"):
        store_batch(c, header, body, s3_key="k", received_at=RECEIVED)


@pytest.fixture
def staged(monkeypatch):
    """Readings that went through the staging path (COPY into a temporary table, INSERT)."""
    calls: list[str] = []
    real = loader._load

    def spy(conn, table, rows, params):
        if table.name == "tecsa_load_readings":
            calls.append(table.name)
        return real(conn, table, rows, params)

    monkeypatch.setattr(loader, "_load", spy)
    return calls


@pytest.mark.usefixtures("hub")
def test_new_readings_are_copied_straight_in_and_one_seen_before_takes_the_exact_path(
    conn, hub_key, staged
):
    rng = random.Random(11)
    first = sample_body(300, rng, NOW)
    first_header, result = _store(conn, first, hub_key, rng)
    assert result.readings == KindCounts(inserted=300)
    assert staged == []  # the fast path: one COPY into readings, no staging
    assert stored_readings(conn, batch_id=first_header.batch_id) == sorted(
        first.readings, key=lambda r: r.id
    )
    # A batch of new readings whose very last one was stored before: the COPY fails on the
    # primary key at its end, the savepoint rolls it back, and the staging path counts exactly.
    fresh = sample_body(199, rng, NOW + timedelta(minutes=1)).readings
    second = Body(readings=(*fresh, first.readings[-1]))
    second_header, result = _store(conn, second, hub_key, rng, seq=2)
    assert staged == ["tecsa_load_readings"]
    assert result.status == "stored"
    assert result.readings == KindCounts(inserted=199, duplicate=1)
    assert count(conn, "readings") == 499
    assert stored_readings(conn, batch_id=second_header.batch_id) == sorted(
        fresh, key=lambda r: r.id
    )
    row = conn.execute(
        "SELECT status, readings_inserted, readings_duplicate FROM batches WHERE batch_id = %s",
        (second_header.batch_id,),
    ).fetchone()
    assert row == ("stored", 199, 1)


@pytest.mark.usefixtures("hub")
def test_a_reading_held_by_another_transaction_is_waited_for_then_counted(db, conn, hub_key):
    rng = random.Random(12)
    first = sample_body(20, rng, NOW)
    _store(conn, first, hub_key, rng)
    shared = first.readings[0]
    second = Body(readings=(*sample_body(30, rng, NOW).readings, shared))
    with connect(db) as other:
        other.execute("BEGIN")
        other.execute("DELETE FROM readings WHERE id = %s", (shared.id,))  # locks the row
        done: dict[str, object] = {}
        worker = threading.Thread(
            target=lambda: done.update(result=_store(conn, second, hub_key, rng, seq=2)[1])
        )
        worker.start()
        wait_for_waiter(other)
        other.execute("ROLLBACK")  # the reading stays stored: the COPY must not double it
        worker.join(10)
    assert done["result"].readings == KindCounts(inserted=30, duplicate=1)
    assert count(conn, "readings") == 50
