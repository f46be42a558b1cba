"""Monthly partitions of readings: created on demand and ahead, by UTC month, race-free."""

from __future__ import annotations

import random
import threading
from datetime import UTC, date, datetime, timedelta, timezone

import psycopg
import pytest
from db_support import HUB_ID, header_for, stored_readings, wait_for_waiter

from cloud.db import (
    connect,
    ensure_partitions,
    ensure_partitions_around,
    list_partitions,
    store_batch,
)
from cloud.db.partitions import add_months, month_of, partition_name
from wire import Body
from wire.samples import sample_batch_id, sample_reading


def _reading(rng, *, measured, received=None):
    received = received or measured + timedelta(seconds=30)
    r = sample_reading(rng, received, device=1, patient=1)
    return r.model_copy(
        update={
            "measured_at": measured,
            "device_time": None if measured is None else measured.replace(tzinfo=None),
        }
    )


def _partition_of(conn):
    rows = conn.execute("SELECT id, tableoid::regclass::text FROM readings").fetchall()
    return dict(rows)


def test_month_arithmetic_is_utc_and_wraps_years():
    assert month_of(datetime(2026, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))) == date(
        2026, 2, 1
    )
    assert month_of(date(2026, 12, 31)) == date(2026, 12, 1)
    assert add_months(date(2026, 12, 1), 1) == date(2027, 1, 1)
    assert add_months(date(2026, 1, 1), -1) == date(2025, 12, 1)
    assert add_months(date(2026, 5, 1), -17) == date(2024, 12, 1)
    assert partition_name(date(2026, 3, 1)) == "readings_y2026m03"
    with pytest.raises(ValueError, match="aware"):
        month_of(datetime(2026, 3, 1))  # the naive time is what is refused


@pytest.mark.usefixtures("hub")
def test_a_batch_spanning_three_months_creates_three_partitions(conn, hub_key):
    rng = random.Random(20)
    readings = (
        _reading(rng, measured=datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        _reading(rng, measured=datetime(2026, 2, 1, tzinfo=UTC)),
        _reading(rng, measured=datetime(2026, 2, 28, 22, tzinfo=timezone(timedelta(hours=-5)))),
    )
    body = Body(readings=readings)
    header = header_for(
        body, hub_id=HUB_ID, hub_key=hub_key, batch_id=sample_batch_id(rng, datetime.now(UTC))
    )
    assert list_partitions(conn) == []
    store_batch(conn, header, body, s3_key="k", received_at=datetime.now(UTC))
    assert list_partitions(conn) == [
        "readings_y2026m01",
        "readings_y2026m02",
        "readings_y2026m03",
    ]
    assert _partition_of(conn) == {
        readings[0].id: "readings_y2026m01",
        readings[1].id: "readings_y2026m02",
        readings[2].id: "readings_y2026m03",  # 22:00 at -05:00 is March 1st in UTC
    }
    assert stored_readings(conn) == sorted(readings, key=lambda r: r.id)


@pytest.mark.usefixtures("hub")
def test_readings_without_a_device_clock_land_by_the_hub_receive_time(conn, hub_key):
    rng = random.Random(21)
    received = datetime(2025, 7, 9, 14, 0, 1, 250000, tzinfo=UTC)
    unknown = _reading(rng, measured=None, received=received)
    assert unknown.measured_at is None
    body = Body(readings=(unknown,))
    header = header_for(
        body, hub_id=HUB_ID, hub_key=hub_key, batch_id=sample_batch_id(rng, received)
    )
    store_batch(conn, header, body, s3_key="k", received_at=datetime.now(UTC))
    assert _partition_of(conn) == {unknown.id: "readings_y2025m07"}
    row = conn.execute(
        "SELECT measured_at, measured_at_reported, device_time FROM readings"
    ).fetchone()
    assert row == (received, None, None)
    assert stored_readings(conn) == [unknown]


def test_there_is_no_default_partition_so_an_unplanned_month_fails_loudly(conn):
    ensure_partitions(conn, [date(2026, 3, 1)])
    with pytest.raises(psycopg.errors.CheckViolation, match="no partition"):
        conn.execute(
            "INSERT INTO readings (id, measured_at, received_at, device_id, kind, components,"
            " hub_id, batch_id) VALUES (gen_random_uuid(), %s, %s, 'd', 'k', '{}', 'h',"
            " gen_random_uuid())",
            (datetime(2031, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)),
        )


def test_partitions_are_created_around_now_once(conn):
    now = datetime(2026, 12, 15, tzinfo=UTC)
    created = ensure_partitions_around(conn, now, behind=1, ahead=2)
    assert created == [
        "readings_y2026m11",
        "readings_y2026m12",
        "readings_y2027m01",
        "readings_y2027m02",
    ]
    assert ensure_partitions_around(conn, now, behind=1, ahead=2) == []
    assert list_partitions(conn) == created
    # each partition inherits the patient index
    indexes = conn.execute(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'readings_y2027m01'"
        " AND indexdef LIKE '%(patient_id, measured_at DESC)%'"
    ).fetchone()
    assert indexes == (1,)


def test_concurrent_creators_of_one_month_do_not_collide(db):
    month = date(2026, 6, 1)
    result: list[list[str]] = []
    errors: list[BaseException] = []

    def second():
        try:
            with connect(db) as c:
                result.append(ensure_partitions(c, [month]))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with connect(db) as first, connect(db) as watcher:
        t = threading.Thread(target=second)
        with first.transaction():  # the first creator has not committed yet
            assert ensure_partitions(first, [month]) == ["readings_y2026m06"]
            t.start()
            wait_for_waiter(watcher, event="advisory")
        t.join(timeout=10)
        assert errors == []
        assert result == [[]]
        assert list_partitions(watcher) == ["readings_y2026m06"]


def test_a_partition_made_by_hand_is_tolerated(conn):
    conn.execute(
        "CREATE TABLE readings_y2026m08 PARTITION OF readings"
        " FOR VALUES FROM ('2026-08-01 00:00+00') TO ('2026-09-01 00:00+00')"
    )
    assert ensure_partitions(conn, [date(2026, 8, 1), date(2026, 9, 1)]) == ["readings_y2026m09"]
