"""The batcher is pure: bounds by count, bytes and age, one priority per batch, order kept."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.uplink.batcher import Batch, Batcher, BatchLimits, CloseReason, close_run


@dataclass(frozen=True)
class Row:
    n: int
    priority: int
    json: str


def row(n: int, *, priority: int = 1, size: int = 10) -> Row:
    return Row(n, priority, "x" * size)


def test_closes_on_count() -> None:
    b = Batcher(BatchLimits(max_items=3, max_age=60))
    assert b.add(row(1), 0.0) is None
    assert b.add(row(2), 0.0) is None
    batch = b.add(row(3), 0.5)
    assert batch is not None
    assert [r.n for r in batch.items] == [1, 2, 3]
    assert (batch.reason, batch.priority, batch.nbytes) == (CloseReason.COUNT, 1, 32)
    assert b.empty


def test_closes_before_exceeding_bytes() -> None:
    b = Batcher(BatchLimits(max_items=100, max_bytes=25, max_age=60))
    assert b.add(row(1), 0) is None
    assert b.add(row(2), 0) is None  # 21 bytes
    batch = b.add(row(3), 0)  # 32 would exceed 25: the first two go
    assert batch is not None
    assert [r.n for r in batch.items] == [1, 2]
    assert batch.reason is CloseReason.BYTES
    assert len(b) == 1


def test_an_oversized_item_travels_alone() -> None:
    b = Batcher(BatchLimits(max_items=100, max_bytes=25, max_age=60))
    b.add(row(1), 0)
    first = b.add(row(2, size=40), 0)
    assert first is not None
    assert [r.n for r in first.items] == [1]
    second = b.poll(0)
    assert second is not None
    assert [r.n for r in second.items] == [2]
    assert b.empty


def test_priority_change_closes_the_batch() -> None:
    b = Batcher(BatchLimits(max_items=100, max_age=60))
    b.add(row(1, priority=0), 0)
    batch = b.add(row(2, priority=1), 0)
    assert batch is not None
    assert (batch.priority, batch.reason) == (0, CloseReason.PRIORITY)


def test_age_and_alert_age() -> None:
    b = Batcher(BatchLimits(max_items=100, max_age=30, alert_max_age=0))
    b.add(row(1), 10.0)
    assert b.deadline == 40.0
    assert b.poll(39.9) is None
    batch = b.poll(40.0)
    assert batch is not None
    assert batch.reason is CloseReason.AGE
    b.add(row(2, priority=0), 50.0)
    assert b.deadline == 50.0  # alerts do not wait for company
    assert b.poll(50.0) is not None


def test_flush_and_empty() -> None:
    b = Batcher(BatchLimits())
    assert b.flush(0) is None
    assert b.deadline is None
    b.add(row(1), 0)
    batch = b.flush(1)
    assert batch is not None
    assert batch.reason is CloseReason.FLUSH
    assert b.flush(2) is None


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_items"):
        BatchLimits(max_items=0)
    with pytest.raises(ValueError, match="max_bytes"):
        BatchLimits(max_bytes=0)
    with pytest.raises(ValueError, match="negative"):
        BatchLimits(max_age=-1)


rows = st.lists(
    st.tuples(st.integers(0, 2), st.integers(1, 60), st.floats(0, 5)), min_size=0, max_size=200
)


@settings(max_examples=300, deadline=None)
@given(
    items=rows,
    max_items=st.integers(1, 20),
    max_bytes=st.integers(1, 200),
    max_age=st.floats(0, 10),
)
def test_bounds_hold_and_nothing_is_lost_or_reordered(items, max_items, max_bytes, max_age):
    limits = BatchLimits(max_items=max_items, max_bytes=max_bytes, max_age=max_age)
    b: Batcher[Row] = Batcher(limits)
    out: list[Batch[Row]] = []
    now = 0.0
    fed = []
    for n, (priority, size, step) in enumerate(sorted(items, key=lambda t: t[0])):
        now += step
        item = Row(n, priority, "y" * size)
        fed.append(item)
        if (batch := b.add(item, now)) is not None:
            out.append(batch)
        while (batch := b.poll(now)) is not None:
            out.append(batch)
        deadline = b.deadline
        assert deadline is None or deadline > now  # nothing due is left behind after a poll
    while (batch := b.flush(now)) is not None:
        out.append(batch)

    assert [r for batch in out for r in batch.items] == fed
    for batch in out:
        assert 0 < len(batch.items) <= max_items
        assert len({r.priority for r in batch.items}) == 1
        assert batch.priority == batch.items[0].priority
        assert batch.nbytes == sum(len(r.json) for r in batch.items) + len(batch.items) - 1
        if len(batch.items) > 1:
            assert batch.nbytes <= max_bytes
        allowed = 0.0 if batch.priority == 0 else max_age
        if batch.reason is CloseReason.AGE:
            assert batch.closed_at >= batch.opened_at + allowed
        else:
            assert batch.closed_at - batch.opened_at <= allowed + 5  # at most one step late


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(1, 40), st.booleans()), min_size=0, max_size=40
    ),
    st.integers(1, 8),
    st.integers(1, 120),
)
def test_close_run_matches_the_batcher(rows, max_items, max_bytes) -> None:
    """The uplink's fast path closes exactly the batch an empty batcher would close first."""
    limits = BatchLimits(max_items=max_items, max_bytes=max_bytes, max_age=60)
    # Some items are not ASCII: their size is in UTF-8 bytes, as the buffer stores it.
    items = [
        Row(i, priority, ("é" if wide else "x") * size)
        for i, (priority, size, wide) in enumerate(rows)
    ]
    sizes = [len(item.json.encode()) for item in items]
    fast = close_run(items, sizes, limits, 5.0)
    batcher: Batcher[Row] = Batcher(limits)
    slow = None
    for item in items:
        slow = batcher.add(item, 5.0)
        if slow is not None:
            break
    if slow is None:
        assert fast is None  # all of them fit the open batch: it waits for company
    else:
        assert fast is not None
        assert (fast.items, fast.priority, fast.nbytes, fast.reason) == (
            slow.items,
            slow.priority,
            slow.nbytes,
            slow.reason,
        )
