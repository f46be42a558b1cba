"""The phone's local queue: every record revision, durable in SQLite (WAL) before anything else.

States: `pending` (made on the phone, not yet answered by a hub) then, only once the hub's answer
for that very record was read, `synced` (accepted or duplicate), `conflict` (the hub kept its own
version too; `answer.stored` is it) or `rejected` (`answer.reason` says why). The hub's answer is
stored with the record. A crash or a kill between sending and reading the answer leaves the record
pending: the next sync sends it again and the hub answers `duplicate`, so nothing doubles.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

from pydantic import ValidationError

from phone.errors import QueueError
from wire.canonical import NotCanonicalizable, content_hash
from wire.ids import uuid7
from wire.items import MedicalRecord

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path
    from types import TracebackType

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL,
    revision    INTEGER NOT NULL,
    record      TEXT    NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'synced', 'conflict', 'rejected')),
    queued_at   TEXT    NOT NULL,
    answered_at TEXT,
    answer      TEXT,
    hub_id      TEXT,
    UNIQUE (id, revision)
);
CREATE INDEX IF NOT EXISTS queue_state ON queue (state, seq);
"""


class State(StrEnum):
    """Where a record revision stands."""

    PENDING = "pending"
    SYNCED = "synced"
    CONFLICT = "conflict"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Queued:
    """One record revision in the queue."""

    seq: int
    id: str
    revision: int
    record: dict[str, Any]
    state: State
    answer: dict[str, Any] | None
    hub_id: str | None


@dataclass(frozen=True, slots=True)
class Answer:
    """The hub's answer for one queued record, as it will be stored."""

    seq: int
    state: State
    answer: dict[str, Any]


def new_record(
    *,
    patient_id: str,
    agent_id: str,
    type_: str,
    payload: dict[str, Any],
    now: datetime,
    rand: bytes,
    record_id: str | None = None,
    revision: int = 1,
) -> dict[str, Any]:
    """A valid record (wire.items.MedicalRecord as JSON), hashed; else `QueueError`."""
    try:
        record = MedicalRecord(
            id=record_id or uuid7(now, rand),
            revision=revision,
            updated_at=now,
            patient_id=patient_id,
            agent_id=agent_id,
            type=type_,
            payload=payload,
            content_hash=content_hash(payload),
        )
    except (ValidationError, NotCanonicalizable, ValueError) as exc:
        raise QueueError(f"not a valid record: {_first_error(exc)}") from None
    return record.model_dump(mode="json", exclude={"flags"})


class Queue:
    """The queue in one SQLite file (created on first use). One per phone (per agent profile).

    A `Queue` is one connection, used by the thread that opened it; other threads open their own
    (WAL lets them read while one writes).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, *, timeout_s: float = 10.0) -> Self:
        """Open (or create) the queue at `path`: WAL, synchronous FULL (survives a power cut).

        A phone's battery dies: a record queued must still be there when it restarts.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise QueueError(f"cannot open the queue {path}: {exc}") from exc
        return cls(conn, path)

    def add(self, record: Mapping[str, Any], *, now: datetime | None = None) -> Queued:
        """Queue one record revision as the app made it (the hub validates it); durable on return.

        Only `id` (a string) and `revision` (an integer) are required here; a revision already
        queued is refused with `QueueError`.
        """
        rid, rev = record.get("id"), record.get("revision")
        if not isinstance(rid, str) or not isinstance(rev, int) or isinstance(rev, bool):
            raise QueueError("a record needs a string id and an integer revision")
        text = json.dumps(dict(record), separators=(",", ":"), ensure_ascii=False)
        stamp = (now or datetime.now(UTC)).isoformat()
        try:
            cur = self._conn.execute(
                "INSERT INTO queue (id, revision, record, queued_at) VALUES (?, ?, ?, ?)",
                (rid, rev, text, stamp),
            )
        except sqlite3.IntegrityError:
            raise QueueError(f"record {rid} revision {rev} is already queued") from None
        seq = cur.lastrowid
        assert seq is not None  # noqa: S101 - an INSERT always has one
        return Queued(seq, rid, rev, json.loads(text), State.PENDING, None, None)

    def add_many(self, records: Iterable[Mapping[str, Any]], *, now: datetime | None = None) -> int:
        """Queue several revisions in one transaction (all or none, as `add` each); the count."""
        n = 0
        with self._transaction():
            for record in records:
                self.add(record, now=now)
                n += 1
        return n

    def next_revision(self, record_id: str) -> int:
        """The revision number a new version of `record_id` takes (1 for a new record)."""
        row = self._conn.execute(
            "SELECT max(revision) FROM queue WHERE id = ?", (record_id,)
        ).fetchone()
        return int(row[0] or 0) + 1

    def pending(self, *, limit: int = 1000) -> list[Queued]:
        """The oldest pending revisions, in the order they were made."""
        rows = self._conn.execute(
            "SELECT seq, id, revision, record, state, answer, hub_id FROM queue "
            "WHERE state = 'pending' ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [_queued(r) for r in rows]

    def records(self, *, state: State | None = None) -> list[Queued]:
        """Every queued revision (or those in `state`), oldest first."""
        sql = "SELECT seq, id, revision, record, state, answer, hub_id FROM queue"
        args: tuple[str, ...] = ()
        if state is not None:
            sql, args = sql + " WHERE state = ?", (state.value,)
        return [_queued(r) for r in self._conn.execute(sql + " ORDER BY seq", args)]

    def record_answers(self, answers: Iterable[Answer], *, hub_id: str, now: datetime) -> None:
        """Store the hub's per-record answers in one transaction (all of a response or none)."""
        stamp = now.isoformat()
        rows = [
            (a.state.value, json.dumps(a.answer, separators=(",", ":")), hub_id, stamp, a.seq)
            for a in answers
        ]
        with self._transaction():
            self._conn.executemany(
                "UPDATE queue SET state = ?, answer = ?, hub_id = ?, answered_at = ? "
                "WHERE seq = ? AND state = 'pending'",
                rows,
            )

    def counts(self) -> dict[State, int]:
        """How many revisions are in each state (every state present, 0 when none)."""
        out = dict.fromkeys(State, 0)
        for state, n in self._conn.execute("SELECT state, count(*) FROM queue GROUP BY state"):
            out[State(state)] = int(n)
        return out

    def close(self) -> None:
        """Close the file."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One immediate transaction: committed if the block ends, rolled back if it raises."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")


def _queued(row: tuple[Any, ...]) -> Queued:
    seq, rid, rev, record, state, answer, hub_id = row
    return Queued(
        int(seq),
        str(rid),
        int(rev),
        json.loads(record),
        State(state),
        json.loads(answer) if answer is not None else None,
        hub_id,
    )


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        return f"{where}: {err.get('msg')}"
    return str(exc)
