"""The buffer's record of signed commands from the cloud: revoked tokens, ids judged, versions.

Reads take a read-only connection, writes return a function the writer runs in its transaction
(the shape `store.py` uses), so checking for a replay, checking the version, applying and
recording a command are one transaction: after a crash, all of it or none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from hub.buffer.values import from_db_time, to_db_time
from wire.commands import CLOCK_SKEW

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable
    from datetime import datetime

    from wire.commands import Command


class CommandOutcome(StrEnum):
    """What the hub did with a verified command."""

    APPLIED = "applied"
    """New and current: applied durably."""
    DUPLICATE = "duplicate"
    """This id was judged already (a redelivery or a replay): nothing done again."""
    STALE = "stale"
    """Its snapshot version is not newer than the one in force: ignored."""
    REFUSED = "refused"
    """Verified but not acted on (no handler for its kind, or the handler refused it)."""


@dataclass(frozen=True, slots=True)
class AppliedVersion:
    """The snapshot of a kind in force: its version, the command that brought it, and when."""

    kind: str
    version: int
    command_id: str
    applied_at: datetime


@dataclass(frozen=True, slots=True)
class CommandStatus:
    """What the hub reports about commands: versions in force and counts by outcome."""

    versions: dict[str, AppliedVersion]
    outcomes: dict[str, int]
    revoked_tokens: int


# --- reads --------------------------------------------------------------------------------------


def command_outcome(conn: sqlite3.Connection, command_id: str) -> CommandOutcome | None:
    """The outcome recorded for `command_id`, or None if the hub never judged it."""
    row = conn.execute("SELECT outcome FROM commands WHERE id = ?", (command_id,)).fetchone()
    return CommandOutcome(row[0]) if row is not None else None


def applied_version(conn: sqlite3.Connection, kind: str) -> int | None:
    """The snapshot version of `kind` in force, or None before the first one."""
    row = conn.execute("SELECT version FROM command_versions WHERE kind = ?", (kind,)).fetchone()
    return int(row[0]) if row is not None else None


def revoked_token_ids(conn: sqlite3.Connection, *, now: datetime) -> frozenset[str]:
    """Ids of revoked tokens that have not expired at `now` (expired ones fail anyway)."""
    rows = conn.execute(
        "SELECT jti FROM revoked_tokens WHERE expires_at > ?", (to_db_time(now - CLOCK_SKEW),)
    ).fetchall()
    return frozenset(row[0] for row in rows)


def command_status(conn: sqlite3.Connection) -> CommandStatus:
    """Versions in force, outcome counts (over remembered commands) and revoked tokens held."""
    versions = {
        row[0]: AppliedVersion(row[0], int(row[1]), row[2], from_db_time(row[3]))
        for row in conn.execute(
            "SELECT kind, version, command_id, applied_at FROM command_versions ORDER BY kind"
        )
    }
    outcomes = {
        row[0]: int(row[1])
        for row in conn.execute("SELECT outcome, count(*) FROM commands GROUP BY outcome")
    }
    revoked = int(conn.execute("SELECT count(*) FROM revoked_tokens").fetchone()[0])
    return CommandStatus(versions=versions, outcomes=outcomes, revoked_tokens=revoked)


# --- writes (run by the writer, inside its transaction) -----------------------------------------


def apply_revocations(
    command: Command, received_at: datetime
) -> Callable[[sqlite3.Connection], tuple[CommandOutcome, int]]:
    """Replace the revocation list with the command's snapshot, unless a replay or stale."""
    snapshot = command.revocations()
    now = to_db_time(received_at - CLOCK_SKEW)
    rows = [
        (t.jti, to_db_time(t.expires_at))
        for t in snapshot.revoked
        if to_db_time(t.expires_at) > now
    ]

    def run(conn: sqlite3.Connection) -> tuple[CommandOutcome, int]:
        judged = _judge(conn, command)
        if judged is not None:
            if judged is CommandOutcome.STALE:
                _record(
                    conn, command, CommandOutcome.STALE, _stale_reason(conn, command), received_at
                )
            return judged, 0
        conn.execute("DELETE FROM revoked_tokens")
        conn.executemany(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?)"
            " ON CONFLICT (jti) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
            rows,
        )
        _record(conn, command, CommandOutcome.APPLIED, None, received_at)
        return CommandOutcome.APPLIED, 0

    return run


def record_command(
    command: Command, outcome: CommandOutcome, reason: str | None, received_at: datetime
) -> Callable[[sqlite3.Connection], tuple[CommandOutcome, int]]:
    """Record a command a handler applied (its version comes into force) or that was refused.

    Returns DUPLICATE, and changes nothing, if its id was recorded meanwhile.
    """

    def run(conn: sqlite3.Connection) -> tuple[CommandOutcome, int]:
        if command_outcome(conn, str(command.id)) is not None:
            return CommandOutcome.DUPLICATE, 0
        _record(conn, command, outcome, reason, received_at)
        return outcome, 0

    return run


def judge(conn: sqlite3.Connection, command: Command) -> CommandOutcome | None:
    """DUPLICATE if its id was judged, STALE if its version is not newer, else None (new)."""
    return _judge(conn, command)


def prune_commands(
    now: datetime,
) -> Callable[[sqlite3.Connection], tuple[int, int]]:
    """Forget commands that can no longer verify (expired beyond the skew allowance)."""
    cutoff = to_db_time(now - CLOCK_SKEW)

    def run(conn: sqlite3.Connection) -> tuple[int, int]:
        n = conn.execute("DELETE FROM commands WHERE expires_at < ?", (cutoff,)).rowcount
        conn.execute("DELETE FROM revoked_tokens WHERE expires_at < ?", (cutoff,))
        return n, 0

    return run


# --- private ------------------------------------------------------------------------------------


def _judge(conn: sqlite3.Connection, command: Command) -> CommandOutcome | None:
    if command_outcome(conn, str(command.id)) is not None:
        return CommandOutcome.DUPLICATE
    version = command.version
    if version is not None:
        current = applied_version(conn, command.kind.value)
        if current is not None and version <= current:
            return CommandOutcome.STALE
    return None


def _stale_reason(conn: sqlite3.Connection, command: Command) -> str:
    current = applied_version(conn, command.kind.value)
    return f"version {command.version} is not newer than version {current} in force"


def _record(
    conn: sqlite3.Connection,
    command: Command,
    outcome: CommandOutcome,
    reason: str | None,
    received_at: datetime,
) -> None:
    stamp = to_db_time(received_at)
    conn.execute(
        "INSERT INTO commands (id, kind, version, issued_at, expires_at, received_at, outcome,"
        " reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (
            str(command.id),
            command.kind.value,
            command.version,
            to_db_time(command.issued_at),
            to_db_time(command.expires_at),
            stamp,
            outcome.value,
            reason[:500] if reason is not None else None,
        ),
    )
    if outcome is CommandOutcome.APPLIED and command.version is not None:
        conn.execute(
            "INSERT INTO command_versions (kind, version, command_id, applied_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (kind) DO UPDATE SET version = excluded.version,"
            " command_id = excluded.command_id, applied_at = excluded.applied_at"
            " WHERE excluded.version > command_versions.version",
            (command.kind.value, command.version, str(command.id), stamp),
        )
