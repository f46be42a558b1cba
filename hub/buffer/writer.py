"""The single writer thread: it owns the only read-write connection and group-commits.

Callers put operations on a queue. The thread takes whatever is queued (up to `max_batch`
readings), applies it in one transaction, commits, and only then settles each caller's future:
nobody learns of success before their rows are committed ("durable when acknowledged").
"""

from __future__ import annotations

import asyncio
import concurrent.futures  # noqa: TC003 - used in a dataclass field type
import contextlib
import functools
import json
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from hub.buffer.capacity import InsertRate
from hub.buffer.errors import BufferClosed, BufferFull, HubBufferError, StorageError, translate
from hub.buffer.values import InsertResult

if TYPE_CHECKING:
    from collections.abc import Callable

    from hub.buffer.config import BufferConfig

log = structlog.get_logger(__name__)

Row = tuple[str, str, str, str, str | None, str, str | None, int, int, str]
"""A `readings` row: the values of `ROW_COLUMNS`, in that order, built in the caller's thread."""

ROW_COLUMNS = (
    "id",
    "dedupe_key",
    "device_id",
    "kind",
    "patient_id",
    "received_at",
    "measured_at",
    "priority",
    "nbytes",
    "json",
)

Effect = tuple[object, int]
"""What a call operation returns: its result, and the change it made to the unsent bytes."""

# A group of readings is inserted by ONE multi-row INSERT in autocommit mode: one statement is one
# transaction, committed when `execute` returns. Why not `executemany`: it hands the GIL back once
# per row, and while the event loop thread is busy each hand-back waits up to a switch interval
# (5 ms), which starves the writer. One statement releases the GIL once for the whole group.
# Statements are prepared for a few sizes only (a power of two up to _MAX_STATEMENT_ROWS), so the
# statement cache stays small; a group is padded up to the next size with copies of its first
# row, which ON CONFLICT DO NOTHING skips as duplicates of that row (rows go in in order).
_MAX_STATEMENT_ROWS = 1024
_ROW_MARKS = "(" + ", ".join("?" * len(ROW_COLUMNS)) + ")"
# The rows one INSERT added have consecutive seq values ending at last_insert_rowid().
_NEW_ROWS = (
    "SELECT json_group_object(id, dedupe_key) FROM reading_rows WHERE seq > last_insert_rowid() - ?"
)


@functools.cache
def insert_statement(rows: int) -> str:
    """The INSERT of `rows` readings that skips any whose id or dedupe key is stored already."""
    return (
        f"INSERT INTO reading_rows ({', '.join(ROW_COLUMNS)}) VALUES "  # noqa: S608 - constants only
        + ", ".join([_ROW_MARKS] * rows)
        + " ON CONFLICT DO NOTHING"
    )


def statement_sizes(count: int) -> list[tuple[int, int]]:
    """Split `count` rows into (rows, padded size) chunks of power-of-two statement sizes."""
    chunks = []
    while count > 0:
        rows = min(count, _MAX_STATEMENT_ROWS)
        chunks.append((rows, 1 << (rows - 1).bit_length()))
        count -= rows
    return chunks


@dataclass(slots=True, eq=False)
class _Op:
    future: asyncio.Future[Any] | concurrent.futures.Future[Any]
    loop: asyncio.AbstractEventLoop | None
    """The loop that owns `future`, or None for a thread future settled directly."""


@dataclass(slots=True, eq=False)
class InsertOp(_Op):
    """Insert readings; settles with one `InsertResult`, or a list of them when not `single`."""

    rows: list[Row]
    single: bool
    all_alert: bool
    nbytes: int


@dataclass(slots=True, eq=False)
class CallOp(_Op):
    """Run `fn` on the write connection inside the group's transaction (under a savepoint)."""

    fn: Callable[[sqlite3.Connection], Effect]


class Writer:
    """Owns the write connection and the thread that group-commits queued operations."""

    def __init__(self, conn: sqlite3.Connection, config: BufferConfig, unsent_bytes: int) -> None:
        self._conn = conn
        self._max_batch = config.max_batch
        self._cap = config.max_unsent_bytes
        self._alert_cap = config.max_unsent_bytes + config.alert_reserve_bytes
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._rate = InsertRate()
        self._rate_lock = threading.Lock()
        self.unsent_bytes = unsent_bytes
        """JSON bytes not yet acknowledged by the cloud, as of the last commit (writer-owned)."""
        self._thread = threading.Thread(target=self._run, name="buffer-writer", daemon=True)
        self._thread.start()

    @property
    def cap(self) -> int:
        """The configured cap on unsent bytes."""
        return self._cap

    def submit(self, op: _Op) -> None:
        """Queue `op`; raises `BufferClosed` once `close` has begun."""
        with self._lock:
            if self._closed:
                raise BufferClosed("the hub buffer is closed; the write was not accepted")
            self._queue.put(op)

    def rate(self) -> tuple[float, float | None]:
        """Recent stored bytes per hour and mean bytes per reading."""
        now = time.monotonic()
        with self._rate_lock:
            return self._rate.bytes_per_hour(now), self._rate.bytes_per_reading(now)

    def close(self) -> None:
        """Apply everything queued so far, checkpoint, close the connection and stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not stop:
            ops: list[_Op] = []
            rows = 0
            item = self._queue.get()
            while True:
                if item is None:
                    stop = True
                    break
                ops.append(item)
                rows += len(item.rows) if isinstance(item, InsertOp) else 1
                if rows >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if ops:
                self._commit_group(ops)
        self._shutdown()

    def _shutdown(self) -> None:
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # the data is committed in the WAL; SQLite replays it
            log.warning("buffer_checkpoint_failed", error=str(exc))
        finally:
            self._conn.close()

    def _commit_group(self, ops: list[_Op]) -> None:
        """Apply a drained group, run by run, then settle every caller once all is committed."""
        outcomes: list[tuple[_Op, object]] = []
        try:
            run: list[_Op] = []
            for op in ops:
                if run and type(op) is not type(run[0]):
                    outcomes += self._apply_run(run)
                    run = []
                run.append(op)
            if run:
                outcomes += self._apply_run(run)
        except Exception as exc:  # a bug must fail this group, never kill the writer thread
            log.exception("buffer_group_crashed", writes=len(ops))
            outcomes = [
                (op, _caused(StorageError(f"buffer writer bug: {exc!r}"), exc)) for op in ops
            ]
        self._settle(outcomes)

    def _apply_run(self, run: list[_Op]) -> list[tuple[_Op, object]]:
        if isinstance(run[0], InsertOp):
            return self._insert([op for op in run if isinstance(op, InsertOp)])
        return self._calls([op for op in run if isinstance(op, CallOp)])

    def _insert(self, ops: list[InsertOp]) -> list[tuple[_Op, object]]:
        """Insert the readings of consecutive insert operations, in as few statements as fit.

        One statement is one transaction: committed (durable) when `execute` returns, or undone
        as a whole.
        """
        outcomes, accepted = self._screen(ops)
        if not accepted:
            return outcomes
        try:
            stored, new = self._insert_rows([row for op in accepted for row in op.rows])
        except sqlite3.IntegrityError as exc:
            # The schema refused a row; SQLite undid that statement. Retry write by write so
            # only the faulty write fails (rows of earlier statements come back duplicate).
            if len(accepted) == 1:
                return [*outcomes, (accepted[0], _caused(translate(exc, "storing"), exc))]
            for op in accepted:
                outcomes += self._insert([op])
            return outcomes
        except sqlite3.Error as exc:
            log.error("buffer_insert_failed", writes=len(accepted), error=str(exc))
            return outcomes + [(op, _caused(translate(exc, "storing"), exc)) for op in accepted]
        stored_bytes = 0
        claimed: set[str] = set()
        for op in accepted:
            results: list[InsertResult] = []
            for rid, key, _d, _k, _p, _r, _m, _pr, nbytes, _j in op.rows:
                if new is None or (rid not in claimed and new.get(rid) == key):
                    claimed.add(rid)
                    results.append(InsertResult.STORED)
                    stored_bytes += nbytes
                else:
                    results.append(InsertResult.DUPLICATE)
            outcomes.append((op, results[0] if op.single else results))
        self.unsent_bytes += stored_bytes
        if stored:
            with self._rate_lock:
                self._rate.add(time.monotonic(), stored_bytes, stored)
        return outcomes

    def _screen(self, ops: list[InsertOp]) -> tuple[list[tuple[_Op, object]], list[InsertOp]]:
        """Refuse the writes that find the backlog at its cap; returns (refusals, accepted).

        The check is per write and made by the only writer, so it is exact up to one write: a
        write is refused when the backlog already reached its limit before it.
        """
        refused: list[tuple[_Op, object]] = []
        accepted: list[InsertOp] = []
        projected = self.unsent_bytes
        for op in ops:
            if projected >= (self._alert_cap if op.all_alert else self._cap):
                refused.append((op, self._refuse(op, projected)))
            else:
                accepted.append(op)
                projected += op.nbytes
        return refused, accepted

    def _insert_rows(self, rows: list[Row]) -> tuple[int, dict[str, str] | None]:
        """Insert `rows`; returns how many were new and, unless all were, the new {id: key}."""
        stored = 0
        new: dict[str, str] = {}
        start = 0
        for count, size in statement_sizes(len(rows)):
            chunk = rows[start : start + count]
            start += count
            values = [v for row in chunk for v in row]
            values += chunk[0] * (size - count)  # padding: duplicates of the chunk's first row
            n = self._conn.execute(insert_statement(size), values).rowcount
            stored += n
            if 0 < n < count:
                new.update(json.loads(self._conn.execute(_NEW_ROWS, (n,)).fetchone()[0]))
            elif n == count:
                new.update((row[0], row[1]) for row in chunk)
        return stored, (None if stored == len(rows) else new)

    def _calls(self, ops: list[CallOp]) -> list[tuple[_Op, object]]:
        """Run consecutive call operations in one transaction, each under its own savepoint."""
        conn = self._conn
        outcomes: list[tuple[_Op, object]] = []
        delta = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                outcome, change = self._call(op)
                outcomes.append((op, outcome))
                delta += change
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            log.error("buffer_write_failed", writes=len(ops), error=str(exc))
            return [(op, _caused(translate(exc, "writing to the buffer"), exc)) for op in ops]
        self.unsent_bytes += delta
        return outcomes

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")

    def _refuse(self, op: InsertOp, projected: int) -> object:
        """At capacity: a write whose readings are all stored already is still a duplicate."""
        for row in op.rows:
            hit = self._conn.execute(
                "SELECT 1 FROM reading_rows WHERE id = ? OR dedupe_key = ?", (row[0], row[1])
            ).fetchone()
            if hit is None:
                limit = self._alert_cap if op.all_alert else self._cap
                return BufferFull(
                    f"hub buffer full: {projected} bytes of readings await upload, the limit is "
                    f"{limit}; nothing was stored (retry after the uplink catches up)",
                    unsent_bytes=projected,
                    max_unsent_bytes=self._cap,
                )
        duplicates = [InsertResult.DUPLICATE] * len(op.rows)
        return duplicates[0] if op.single else duplicates

    def _call(self, op: CallOp) -> tuple[object, int]:
        """Run one call under a savepoint: (its result, unsent-bytes change) or (its error, 0)."""
        conn = self._conn
        conn.execute("SAVEPOINT call")
        outcome: HubBufferError
        try:
            value, delta = op.fn(conn)
        except HubBufferError as exc:
            outcome = exc
        except sqlite3.Error as exc:
            outcome = _caused(translate(exc, "writing to the buffer"), exc)
        except Exception as exc:  # a bug in one call fails that call only  # noqa: BLE001
            outcome = _caused(StorageError(f"buffer writer bug: {exc!r}"), exc)
        else:
            conn.execute("RELEASE call")
            return value, delta
        conn.execute("ROLLBACK TO call")
        conn.execute("RELEASE call")
        return outcome, 0

    def _settle(self, outcomes: list[tuple[_Op, object]]) -> None:
        """Settle thread futures directly, and each event loop's futures in one callback."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], object]]] = {}
        for op, outcome in outcomes:
            if op.loop is None:
                future = op.future
                if future.done():  # settled already (a group that crashed half-way)
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            else:
                assert isinstance(op.future, asyncio.Future)  # noqa: S101 - invariant of _Op
                by_loop.setdefault(op.loop, []).append((op.future, outcome))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop was closed: nobody is waiting
                loop.call_soon_threadsafe(_settle_in_loop, items)


def _settle_in_loop(items: list[tuple[asyncio.Future[Any], object]]) -> None:
    for future, outcome in items:
        if future.done():  # the caller was cancelled; the write itself stands
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _caused(error: HubBufferError, cause: BaseException) -> HubBufferError:
    error.__cause__ = cause
    return error
