from __future__ import annotations

import tracemalloc
from dataclasses import replace
from datetime import timedelta
from uuid import UUID

from buffer_testkit import T0, new

from hub.buffer import SCHEMA_VERSION, Buffer, Priority, store

BATCH = UUID("019de28d-3c00-7000-8000-000000000001")
OTHER = UUID("019de28d-3c00-7000-8000-000000000002")


async def test_unsent_rows_come_alerts_first_then_in_arrival_order(buffer, make_reading):
    routine = [make_reading() for _ in range(3)]
    alerts = [make_reading() for _ in range(2)]
    bulk = make_reading()
    await buffer.insert(routine[0], dedupe_key="r0")
    await buffer.insert(bulk, dedupe_key="b0", priority=Priority.BULK)
    await buffer.insert(alerts[0], dedupe_key="a0", priority=Priority.ALERT)
    await buffer.insert(routine[1], dedupe_key="r1")
    await buffer.insert(alerts[1], dedupe_key="a1", priority=Priority.ALERT)
    await buffer.insert(routine[2], dedupe_key="r2")

    order = [p.id for p in buffer.iter_unsent(page_size=2)]

    assert order == [r.id for r in (*alerts, *routine, bulk)]


async def test_pages_resume_after_the_last_row(buffer, make_reading) -> None:
    readings = [make_reading() for _ in range(5)]
    await buffer.insert_many([new(r) for r in readings])

    first = buffer.unsent_page(limit=2)
    second = buffer.unsent_page(after=(first[-1].priority, first[-1].seq), limit=2)
    third = buffer.unsent_page(after=(second[-1].priority, second[-1].seq), limit=2)

    assert [p.id for p in (*first, *second, *third)] == [r.id for r in readings]
    assert buffer.unsent_page(after=(third[-1].priority, third[-1].seq)) == []


async def test_a_50k_backlog_streams_without_being_materialised(config, make_reading) -> None:
    buf = Buffer.open(replace(config, max_batch=5000))
    try:
        template = make_reading()
        readings = [template.model_copy(update={"id": UUID(int=i + 1)}) for i in range(50_000)]
        for i in range(0, len(readings), 5000):
            part = readings[i : i + 5000]
            await buf.insert_many([new(r, priority=r.id.int % 3) for r in part])
        backlog_bytes = buf.unsent_bytes

        tracemalloc.start()
        count = 0
        last = (-1, -1)
        for pending in buf.iter_unsent(page_size=500):
            assert (pending.priority, pending.seq) > last
            last = (pending.priority, pending.seq)
            count += 1
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        await buf.aclose()

    assert count == 50_000
    assert backlog_bytes > 15_000_000
    assert peak < backlog_bytes / 20  # one page of 500 rows, not the backlog


async def test_batch_assignment_and_delivery(buffer, make_reading) -> None:
    a, b, c = make_reading(), make_reading(), make_reading()
    await buffer.insert_many([new(a), new(b), new(c)])
    before = buffer.unsent_bytes

    assert await buffer.assign_batch(BATCH, [a.id, b.id]) == 2
    assert await buffer.assign_batch(OTHER, [b.id, c.id]) == 1  # b is taken already

    assert [p.id for p in buffer.iter_unsent()] == []
    assert [p.id for p in buffer.batch_rows(BATCH)] == [a.id, b.id]
    stats = buffer.stats()
    assert (stats.unsent, stats.in_flight, stats.delivered) == (3, 3, 0)

    assert await buffer.mark_delivered(BATCH, at=T0) == 2
    assert await buffer.mark_delivered(BATCH, at=T0) == 0  # a repeated ack changes nothing

    stats = buffer.stats()
    assert (stats.unsent, stats.in_flight, stats.delivered) == (1, 1, 2)
    assert buffer.batch_rows(BATCH) == []
    assert buffer.unsent_bytes == before - len(a.model_dump_json()) - len(b.model_dump_json())
    assert stats.unsent_bytes == buffer.unsent_bytes


async def test_a_released_batch_goes_back_to_the_queue(buffer, make_reading) -> None:
    a, b = make_reading(), make_reading()
    await buffer.insert_many([new(a), new(b)])
    await buffer.assign_batch(BATCH, [a.id, b.id])

    assert await buffer.release_batch(BATCH) == 2

    assert [p.id for p in buffer.iter_unsent()] == [a.id, b.id]


async def test_prune_deletes_old_delivered_rows_only(config, make_reading) -> None:
    buf = Buffer.open(replace(config, retention=timedelta(days=7)))
    try:
        old_sent, new_sent, unsent = make_reading(), make_reading(), make_reading()
        in_flight = make_reading()
        await buf.insert_many([new(r) for r in (old_sent, new_sent, unsent, in_flight)])
        await buf.assign_batch(BATCH, [old_sent.id])
        await buf.mark_delivered(BATCH, at=T0)
        await buf.assign_batch(OTHER, [new_sent.id])
        await buf.mark_delivered(OTHER, at=T0 + timedelta(days=5))
        await buf.assign_batch(UUID(int=3), [in_flight.id])

        assert await buf.prune(now=T0 + timedelta(days=8)) == 1
        assert await buf.prune(now=T0 + timedelta(days=8)) == 0
        remaining = buf.stats()
        assert await buf.prune(now=T0 + timedelta(days=1000)) == 1
        final = buf.stats()
    finally:
        await buf.aclose()

    assert (remaining.total, remaining.delivered, remaining.unsent) == (3, 1, 2)
    assert (final.total, final.delivered, final.unsent) == (2, 0, 2)


async def test_prune_works_in_chunks(buffer, make_reading, monkeypatch) -> None:
    monkeypatch.setattr(store, "PRUNE_CHUNK", 3)
    readings = [make_reading() for _ in range(10)]
    await buffer.insert_many([new(r) for r in readings])
    await buffer.assign_batch(BATCH, [r.id for r in readings[:8]])
    await buffer.mark_delivered(BATCH, at=T0)

    assert await buffer.prune(now=T0 + timedelta(days=365)) == 8
    assert buffer.stats().total == 2


async def test_stats_counts_by_kind_and_oldest_unsent(buffer: Buffer, make_reading) -> None:
    readings = [make_reading() for _ in range(12)]
    await buffer.insert_many([new(r) for r in readings])
    await buffer.assign_batch(BATCH, [readings[0].id])
    await buffer.mark_delivered(BATCH, at=T0)

    stats = buffer.stats()

    assert stats.total == 12
    assert stats.unsent == 11
    assert stats.delivered == 1
    assert sum(k.total for k in stats.by_kind.values()) == 12
    assert sum(k.unsent for k in stats.by_kind.values()) == 11
    assert stats.by_kind[readings[0].kind].total - stats.by_kind[readings[0].kind].unsent == 1
    assert stats.oldest_unsent_received_at == readings[1].received_at
    assert stats.file_bytes > 0
    assert stats.schema_version == SCHEMA_VERSION
    assert stats.at_capacity is False


async def test_unsent_rows_are_the_unsent_page_without_ids(buffer, make_reading) -> None:
    readings = [make_reading() for _ in range(7)]
    for i, reading in enumerate(readings):
        priority = (Priority.ALERT, Priority.ROUTINE, Priority.BULK)[i % 3]
        await buffer.insert(reading, dedupe_key=f"k{i}", priority=priority)
    after = None
    while page := buffer.unsent_page(after=after, limit=2):
        rows = buffer.unsent_rows(after=after, limit=2)
        assert [(r.seq, r.priority, r.json) for r in rows] == [
            (p.seq, p.priority, p.json) for p in page
        ]
        assert [r.nbytes for r in rows] == [len(p.json.encode()) for p in page]
        after = (page[-1].priority, page[-1].seq)
    assert buffer.unsent_rows(after=after) == []
