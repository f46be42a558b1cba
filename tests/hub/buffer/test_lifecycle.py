from __future__ import annotations

import asyncio
import sqlite3

import pytest
from buffer_testkit import T0

from hub.buffer import Buffer, BufferClosed, InsertResult


async def test_close_commits_everything_queued_before_it(config, make_reading) -> None:
    buf = Buffer.open(config)
    readings = [make_reading() for _ in range(500)]
    tasks = [asyncio.create_task(buf.insert(r, dedupe_key=str(r.id))) for r in readings]
    await asyncio.sleep(0)  # every task has queued its write; none is settled yet
    assert not any(t.done() for t in tasks)

    await buf.aclose()

    assert await asyncio.gather(*tasks) == [InsertResult.STORED] * 500
    with sqlite3.connect(config.path) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 500
    assert not config.path.with_name(config.path.name + "-wal").exists() or (
        config.path.with_name(config.path.name + "-wal").stat().st_size == 0
    )


async def test_writes_after_close_are_refused(config, make_reading) -> None:
    buf = Buffer.open(config)
    await buf.aclose()
    await buf.aclose()  # closing twice is harmless

    with pytest.raises(BufferClosed):
        await buf.insert(make_reading(), dedupe_key="k")
    with pytest.raises(BufferClosed):
        await buf.device_seen("AA", profile="p", at=T0)
    with pytest.raises(BufferClosed):
        buf.sync.insert(make_reading(), dedupe_key="k")
    with pytest.raises(BufferClosed):
        buf.stats()


def test_context_manager_closes(config, make_reading) -> None:
    with Buffer.open(config) as buf:
        buf.sync.insert(make_reading(), dedupe_key="k")
    with pytest.raises(BufferClosed):
        buf.sync.insert(make_reading(), dedupe_key="k2")


async def test_a_cancelled_caller_does_not_undo_the_write(buffer, make_reading) -> None:
    reading = make_reading()
    task = asyncio.create_task(buffer.insert(reading, dedupe_key="k"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # The write was queued before the cancel: it is stored, and a retry says so.
    assert await buffer.insert(reading, dedupe_key="k") is InsertResult.DUPLICATE


async def test_readers_see_committed_rows_from_other_threads(buffer, make_reading) -> None:
    reading = make_reading()
    await buffer.insert(reading, dedupe_key="k")

    pages = await asyncio.to_thread(buffer.unsent_page)

    assert [p.id for p in pages] == [reading.id]
