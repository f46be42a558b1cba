"""Phones seen on the LAN (zeroconf), kept in the buffer for `tecsa-hub phones`.

Informative only: a phone is authenticated by its token on every request, never by what it
advertises. Reads take a connection (the CLI's read-only one or the buffer's readers); writes
are built here and run on the buffer's writer thread (`Buffer.phone_seen`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.buffer.values import from_db_time, to_db_time

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable
    from datetime import datetime

MAX_NAME = 255  # a DNS name (RFC 1035 section 2.3.4)


@dataclass(frozen=True, slots=True)
class Phone:
    """A phone the hub has heard of, and whether it still advertises itself."""

    name: str
    agent: str | None
    app: str | None
    first_seen: datetime
    last_seen: datetime
    present: bool


def phones(conn: sqlite3.Connection) -> list[Phone]:
    """Every phone seen, most recently seen first."""
    rows = conn.execute(
        "SELECT name, agent, app, first_seen, last_seen, present FROM phones"
        " ORDER BY last_seen DESC, name"
    ).fetchall()
    return [
        Phone(
            name=name,
            agent=agent,
            app=app,
            first_seen=from_db_time(first),
            last_seen=from_db_time(last),
            present=bool(present),
        )
        for name, agent, app, first, last, present in rows
    ]


def phone_seen(
    name: str, *, agent: str | None, app: str | None, at: datetime, present: bool
) -> Callable[[sqlite3.Connection], tuple[Phone, int]]:
    """The write recording a sighting (or a withdrawal when not `present`) of phone `name`.

    The first sighting fixes `first_seen`; `last_seen` never goes back; a withdrawal keeps the
    agent and app last advertised.
    """
    if not 0 < len(name) <= MAX_NAME:
        raise ValueError(f"a phone's name is 1 to {MAX_NAME} characters")
    stamp = to_db_time(at)

    def run(conn: sqlite3.Connection) -> tuple[Phone, int]:
        conn.execute(
            "INSERT INTO phones (name, agent, app, first_seen, last_seen, present)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " agent = coalesce(excluded.agent, agent), app = coalesce(excluded.app, app),"
            " last_seen = max(last_seen, excluded.last_seen), present = excluded.present",
            (name, agent, app, stamp, stamp, int(present)),
        )
        row = conn.execute(
            "SELECT name, agent, app, first_seen, last_seen, present FROM phones WHERE name = ?",
            (name,),
        ).fetchone()
        return (
            Phone(
                name=row[0],
                agent=row[1],
                app=row[2],
                first_seen=from_db_time(row[3]),
                last_seen=from_db_time(row[4]),
                present=bool(row[5]),
            ),
            0,
        )

    return run


def all_absent() -> Callable[[sqlite3.Connection], tuple[int, int]]:
    """The write marking every phone withdrawn (the daemon starts: none is known to be there)."""

    def run(conn: sqlite3.Connection) -> tuple[int, int]:
        return conn.execute("UPDATE phones SET present = 0 WHERE present = 1").rowcount, 0

    return run
