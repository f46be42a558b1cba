"""Plans cached on the hub: the newest snapshot, replaced whole, served to phones.

They arrive from the cloud on `down/cmd` or from `tecsa-hub plans import FILE`. A replace is one
transaction (all the new plans, or the old ones untouched). Reads take a connection; writes are
built here and run on the buffer's writer thread (`Buffer.replace_plans`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hub.buffer.values import from_db_time, to_db_time
from wire.plans import Plan

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Sequence

META_PLANS = "plans"
"""`meta` key of the snapshot's version, source and replace time (JSON)."""
SOURCES = ("cloud", "import")


@dataclass(frozen=True, slots=True)
class PlansInfo:
    """Which snapshot the hub holds."""

    version: int
    source: str
    """"cloud" (down/cmd) or "import" (`tecsa-hub plans import`)."""
    replaced_at: datetime
    count: int


def plans(conn: sqlite3.Connection) -> list[Plan]:
    """The plans of the snapshot held, in the snapshot's order."""
    rows = conn.execute("SELECT json FROM plans ORDER BY ord").fetchall()
    return [Plan.model_validate_json(row[0]) for row in rows]


def plans_info(conn: sqlite3.Connection) -> PlansInfo | None:
    """The version and origin of the snapshot held; None before any was stored."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_PLANS,)).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    count = conn.execute("SELECT count(*) FROM plans").fetchone()[0]
    return PlansInfo(
        version=int(data["version"]),
        source=str(data["source"]),
        replaced_at=from_db_time(data["replaced_at"]),
        count=int(count),
    )


def replace_plans(
    snapshot: Sequence[Plan], *, version: int, source: str, at: datetime | None = None
) -> Callable[[sqlite3.Connection], tuple[PlansInfo, int]]:
    """The write replacing every stored plan with `snapshot` (ids must be unique), at `at` (now)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if version < 0:
        raise ValueError(f"a plans version is >= 0, got {version}")
    rows = [(p.id, n, p.model_dump_json()) for n, p in enumerate(snapshot)]
    if len({r[0] for r in rows}) != len(rows):
        raise ValueError("plan ids must be unique within a snapshot")
    stamp = to_db_time(at or datetime.now(UTC))
    meta = json.dumps({"version": version, "source": source, "replaced_at": stamp})

    def run(conn: sqlite3.Connection) -> tuple[PlansInfo, int]:
        conn.execute("DELETE FROM plans")
        conn.executemany("INSERT INTO plans (id, ord, json) VALUES (?, ?, ?)", rows)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (META_PLANS, meta),
        )
        return PlansInfo(version, source, from_db_time(stamp), len(rows)), 0

    return run
