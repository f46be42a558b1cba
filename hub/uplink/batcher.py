"""The batcher: a pure state machine grouping unsent rows into bounded batches of one priority.

Batches are bounded by count, bytes and age. Rows arrive in send order (the buffer streams them
alerts first). `add(item, now)` returns a batch when one closes; `poll(now)` returns one that
became due by age (or was left ready by an `add` that closed two at once); `flush(now)` closes
whatever is open. Times are plain seconds on any monotonic clock the caller chooses; nothing here
reads a clock, logs or does I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Sequence

ALERT_PRIORITY = 0
"""Priority of alert rows (the buffer's `Priority.ALERT`)."""

SEPARATOR_BYTES = 1
"""A comma between two items in the body's JSON array (docs/wire.md section 4)."""


class Item(Protocol):
    """What the batcher needs of a row: its priority and its wire JSON."""

    @property
    def priority(self) -> int:
        """Lower values are sent first; 0 is an alert."""
        ...

    @property
    def json(self) -> str:
        """The item as wire JSON."""
        ...


T = TypeVar("T", bound=Item)


class CloseReason(StrEnum):
    """Why a batch was closed."""

    COUNT = "count"
    BYTES = "bytes"
    PRIORITY = "priority"
    AGE = "age"
    FLUSH = "flush"


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """Bounds of one batch."""

    max_items: int = 500
    max_bytes: int = 256 * 1024
    """JSON bytes of the items and their separators; an item larger than this travels alone."""
    max_age: float = 30.0
    """Seconds the first row of a routine batch may wait for company before the batch is sent."""
    alert_max_age: float = 0.0
    """The same for alert batches: by default they go as soon as the backlog has been read."""

    def __post_init__(self) -> None:
        if self.max_items < 1:
            raise ValueError("max_items must be at least 1")
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self.max_age < 0 or self.alert_max_age < 0:
            raise ValueError("batch ages must not be negative")


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    """A closed batch: its items in order, all of one priority."""

    items: tuple[T, ...]
    priority: int
    nbytes: int
    """JSON bytes of the items plus separators."""
    opened_at: float
    closed_at: float
    reason: CloseReason


class Batcher(Generic[T]):
    """Groups items into batches; see the module docstring for the protocol."""

    def __init__(self, limits: BatchLimits) -> None:
        self._limits = limits
        self._items: list[T] = []
        self._nbytes = 0
        self._opened_at = 0.0
        self._ready: deque[Batch[T]] = deque()

    @property
    def limits(self) -> BatchLimits:
        """The bounds this batcher applies."""
        return self._limits

    def __len__(self) -> int:
        """Items in the open batch (not counting closed batches waiting in `poll`)."""
        return len(self._items)

    @property
    def empty(self) -> bool:
        """True when no item waits, in the open batch or in a closed one."""
        return not self._items and not self._ready

    @property
    def deadline(self) -> float | None:
        """When the open batch becomes due by age (or now, if a closed one waits); else None."""
        if self._ready:
            return self._ready[0].closed_at
        if not self._items:
            return None
        return self._opened_at + self._max_age(self._items[0].priority)

    def add(self, item: T, now: float) -> Batch[T] | None:
        """Add `item`; return the batch this closed, if any (call `poll` for a second one)."""
        size = len(item.json.encode()) if not item.json.isascii() else len(item.json)
        if self._items:
            if item.priority != self._items[0].priority:
                self._close(now, CloseReason.PRIORITY)
            elif self._nbytes + SEPARATOR_BYTES + size > self._limits.max_bytes:
                self._close(now, CloseReason.BYTES)
        if not self._items:
            self._opened_at = now
            self._nbytes = size
        else:
            self._nbytes += SEPARATOR_BYTES + size
        self._items.append(item)
        if len(self._items) >= self._limits.max_items:
            self._close(now, CloseReason.COUNT)
        elif self._nbytes >= self._limits.max_bytes:
            self._close(now, CloseReason.BYTES)
        return self._ready.popleft() if self._ready else None

    def poll(self, now: float) -> Batch[T] | None:
        """A batch that is ready: closed earlier, or open and due by age at `now`."""
        if self._ready:
            return self._ready.popleft()
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            self._close(now, CloseReason.AGE)
            return self._ready.popleft()
        return None

    def flush(self, now: float) -> Batch[T] | None:
        """Close and return the open batch (or a ready one first); None when empty."""
        if self._ready:
            return self._ready.popleft()
        if not self._items:
            return None
        self._close(now, CloseReason.FLUSH)
        return self._ready.popleft()

    def _max_age(self, priority: int) -> float:
        return self._limits.alert_max_age if priority == ALERT_PRIORITY else self._limits.max_age

    def _close(self, now: float, reason: CloseReason) -> None:
        items, self._items = tuple(self._items), []
        self._ready.append(
            Batch(
                items=items,
                priority=items[0].priority,
                nbytes=self._nbytes,
                opened_at=self._opened_at,
                closed_at=now,
                reason=reason,
            )
        )
        self._nbytes = 0


def close_run(
    items: Sequence[T], sizes: Sequence[int], limits: BatchLimits, now: float
) -> Batch[T] | None:
    """The first batch an empty `Batcher` fed `items` in order would close, without the batcher.

    `sizes[i]` is the UTF-8 length of `items[i].json`. Returns None when every item fits in the
    open batch (it would wait for company or for its age): feed them to a `Batcher` then. The
    uplink uses this for the common case, a backlog, so closing a full batch costs no Python
    per row beyond this loop (`test_close_run_matches_the_batcher` pins the equivalence).
    """
    if not items:
        return None
    priority = items[0].priority
    max_items, max_bytes = limits.max_items, limits.max_bytes
    nbytes = sizes[0]
    taken = 1
    reason: CloseReason | None = None
    if max_items <= 1:
        reason = CloseReason.COUNT
    elif nbytes >= max_bytes:
        reason = CloseReason.BYTES
    else:
        for item, size in zip(items[1:], sizes[1:], strict=True):
            if item.priority != priority:
                reason = CloseReason.PRIORITY
                break
            if nbytes + SEPARATOR_BYTES + size > max_bytes:
                reason = CloseReason.BYTES
                break
            nbytes += SEPARATOR_BYTES + size
            taken += 1
            if taken >= max_items:
                reason = CloseReason.COUNT
                break
            if nbytes >= max_bytes:
                reason = CloseReason.BYTES
                break
    if reason is None:
        return None
    return Batch(
        items=tuple(items[:taken]),
        priority=priority,
        nbytes=nbytes,
        opened_at=now,
        closed_at=now,
        reason=reason,
    )


def close_items(
    items: Sequence[T],
    sizes: Sequence[int],
    limits: BatchLimits,
    now: float,
    *,
    key: Callable[[T], Hashable],
) -> Batch[T] | None:
    """A batch of the leading items of the first item's priority, closed at once (no waiting).

    For medical records and triage results, which are few and sent as soon as they are stored:
    the batch takes items in order while they keep the first one's priority and fit the count
    and byte bounds (`sizes[i]` is the UTF-8 length of `items[i].json`; an item larger than
    `max_bytes` travels alone). An item whose `key` equals one already taken is left for a later
    batch: a body may not hold two versions of one record id and revision. None when empty.
    """
    if not items:
        return None
    priority = items[0].priority
    taken: list[T] = []
    keys: set[Hashable] = set()
    nbytes = 0
    reason = CloseReason.FLUSH
    for item, size in zip(items, sizes, strict=True):
        if item.priority != priority:
            reason = CloseReason.PRIORITY
            break
        k = key(item)
        if k in keys:
            continue
        added = size if not taken else SEPARATOR_BYTES + size
        if taken and nbytes + added > limits.max_bytes:
            reason = CloseReason.BYTES
            break
        taken.append(item)
        keys.add(k)
        nbytes += added
        if len(taken) >= limits.max_items:
            reason = CloseReason.COUNT
            break
        if nbytes >= limits.max_bytes:
            reason = CloseReason.BYTES
            break
    return Batch(
        items=tuple(taken),
        priority=priority,
        nbytes=nbytes,
        opened_at=now,
        closed_at=now,
        reason=reason,
    )
