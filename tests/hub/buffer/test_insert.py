from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
from buffer_testkit import new

from hub.buffer import Buffer, InsertResult, NewReading, Priority

if TYPE_CHECKING:
    from wire.items import Reading


def rows(buffer: Buffer) -> list[tuple[str, str]]:
    with sqlite3.connect(buffer._config.path) as conn:
        return conn.execute("SELECT id, dedupe_key FROM readings ORDER BY seq").fetchall()


async def test_insert_stores_the_wire_json(buffer: Buffer, make_reading) -> None:
    reading = make_reading()

    result = await buffer.insert(reading, dedupe_key="dev/2a35/1/sha256:aa")

    assert result is InsertResult.STORED
    [pending] = list(buffer.iter_unsent())
    assert pending.id == reading.id
    assert pending.reading() == reading
    assert pending.json == reading.model_dump_json()


async def test_same_dedupe_key_is_a_duplicate_and_stores_nothing(buffer: Buffer, make_reading):
    first, second = make_reading(), make_reading()

    assert await buffer.insert(first, dedupe_key="k1") is InsertResult.STORED
    assert await buffer.insert(second, dedupe_key="k1") is InsertResult.DUPLICATE

    assert rows(buffer) == [(str(first.id), "k1")]


async def test_same_id_is_a_duplicate_whatever_the_key(buffer: Buffer, make_reading) -> None:
    reading = make_reading()

    assert await buffer.insert(reading, dedupe_key="k1") is InsertResult.STORED
    assert await buffer.insert(reading, dedupe_key="k2") is InsertResult.DUPLICATE

    assert rows(buffer) == [(str(reading.id), "k1")]


async def test_insert_many_answers_per_item_in_order(buffer: Buffer, make_reading) -> None:
    a, b, c = make_reading(), make_reading(), make_reading()
    await buffer.insert(b, dedupe_key="kb")

    results = await buffer.insert_many(
        [new(a, key="ka"), new(b, key="kb"), new(c, key="kc"), new(c, key="kc2"), new(a, key="ka")]
    )

    assert results == ["stored", "duplicate", "stored", "duplicate", "duplicate"]
    assert rows(buffer) == [(str(b.id), "kb"), (str(a.id), "ka"), (str(c.id), "kc")]
    assert buffer.stats().total == 3


async def test_insert_many_of_nothing_is_nothing(buffer: Buffer) -> None:
    assert await buffer.insert_many([]) == []


async def test_insert_many_larger_than_a_batch_is_split(config, make_reading) -> None:
    buf = Buffer.open(replace(config, max_batch=7))
    try:
        items = [new(make_reading()) for _ in range(50)]
        assert await buf.insert_many(items) == [InsertResult.STORED] * 50
        assert await buf.insert_many(items) == [InsertResult.DUPLICATE] * 50
        assert buf.stats().total == 50
    finally:
        await buf.aclose()


async def test_bad_dedupe_key_or_priority_is_refused_before_queueing(buffer, make_reading):
    with pytest.raises(ValueError, match="dedupe_key"):
        await buffer.insert(make_reading(), dedupe_key="")
    with pytest.raises(ValueError, match="dedupe_key"):
        await buffer.insert(make_reading(), dedupe_key="x" * 513)
    with pytest.raises(ValueError, match="priority"):
        await buffer.insert(make_reading(), dedupe_key="k", priority=10)
    assert buffer.stats().total == 0


async def test_many_tasks_racing_with_duplicates_store_each_reading_once(buffer, make_reading):
    readings = [make_reading() for _ in range(300)]

    async def produce(offset: int) -> list[InsertResult]:
        # Every reading is submitted by four tasks at once, two of them under another key.
        out = []
        for i, reading in enumerate(readings):
            key = f"k{i}" if offset % 2 == 0 else f"other{i}-{offset}"
            out.append(await buffer.insert(reading, dedupe_key=key))
        return out

    results = await asyncio.gather(*(produce(k) for k in range(4)))

    for i in range(len(readings)):
        assert sorted(r[i] for r in results).count(InsertResult.STORED) == 1
    stored = rows(buffer)
    assert len(stored) == len({rid for rid, _ in stored}) == 300
    assert {rid for rid, _ in stored} == {str(r.id) for r in readings}


async def test_hundreds_of_tasks_lose_and_double_nothing(buffer: Buffer, make_reading) -> None:
    readings = [make_reading(device=i % 12) for i in range(2000)]

    async def produce(part: list[Reading]) -> None:
        for reading in part:
            assert await buffer.insert(reading, dedupe_key=str(reading.id)) == "stored"

    await asyncio.gather(*(produce(readings[k::200]) for k in range(200)))

    assert sorted(rid for rid, _ in rows(buffer)) == sorted(str(r.id) for r in readings)


def test_threads_use_the_blocking_api(config, make_reading) -> None:
    readings = [make_reading() for _ in range(400)]
    results: list[InsertResult] = []
    lock = threading.Lock()
    with Buffer.open(config) as buf:

        def produce(part: list[Reading]) -> None:
            for reading in part:
                # Each reading twice: once by this thread's key, once by id alone.
                first = buf.sync.insert(reading, dedupe_key=f"a{reading.id}")
                again = buf.sync.insert(reading, dedupe_key=f"b{reading.id}")
                with lock:
                    results.extend([first, again])

        threads = [threading.Thread(target=produce, args=(readings[k::8],)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stored = rows(buf)

    assert results.count(InsertResult.STORED) == 400
    assert results.count(InsertResult.DUPLICATE) == 400
    assert sorted(rid for rid, _ in stored) == sorted(str(r.id) for r in readings)


def test_sync_insert_many(config, make_reading) -> None:
    a, b = make_reading(), make_reading()
    with Buffer.open(config) as buf:
        assert buf.sync.insert_many([new(a), new(b), new(a)]) == [
            "stored",
            "stored",
            "duplicate",
        ]


async def test_alert_priority_is_stored(buffer: Buffer, make_reading) -> None:
    reading = make_reading()
    await buffer.insert(reading, dedupe_key="k", priority=Priority.ALERT)
    [pending] = buffer.unsent_page()
    assert pending.priority == 0


async def test_stored_columns_come_from_the_reading(buffer: Buffer, make_reading) -> None:
    reading = make_reading(device=3, patient=7)
    await buffer.insert_many([NewReading(reading, "k", 2)])
    with sqlite3.connect(buffer._config.path) as conn:
        row = conn.execute(
            "SELECT device_id, kind, patient_id, received_at, measured_at, priority, nbytes,"
            " batch_id, delivered_at FROM readings"
        ).fetchone()
    assert row[0] == reading.device_id
    assert row[1] == reading.kind
    assert row[2] == "pat-000007"
    assert row[3] == reading.received_at.isoformat(timespec="microseconds")
    assert reading.measured_at is not None
    assert row[4] == reading.measured_at.isoformat(timespec="microseconds")
    assert row[5:] == (2, len(reading.model_dump_json()), None, None)
