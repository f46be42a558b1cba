"""Monthly partitions of `readings`, created before rows need them (there is no DEFAULT one).

A reading belongs to the UTC calendar month of its `measured_at` (the hub's estimate, or the
hub's receive time when the device clock is unknown). `ensure_partitions` creates missing months
under a per-month advisory lock, so concurrent ingestors never collide: the second one waits, then
finds the table there. The loader calls it for every month of a batch; `tecsa-cloud db upgrade`
(and a periodic job) calls `ensure_partitions_around` to create months ahead of time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from psycopg import errors as pg_errors
from psycopg import sql

from cloud.db.connection import translated

if TYPE_CHECKING:
    from collections.abc import Iterable

    import psycopg

PARENT = "readings"
PARTITION_LOCK_CLASS = 0x7465_6373  # "tecsa": first key of pg_advisory_xact_lock(int, int)
MONTHS_PER_YEAR = 12


def month_of(moment: datetime | date) -> date:
    """The first day of the UTC month holding `moment` (a date is taken as it is)."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("partition months need an aware datetime")
        moment = moment.astimezone(UTC).date()
    return moment.replace(day=1)


def add_months(month: date, count: int) -> date:
    """The first day of the month `count` months after `month` (negative: before)."""
    index = month.year * MONTHS_PER_YEAR + month.month - 1 + count
    return date(index // MONTHS_PER_YEAR, index % MONTHS_PER_YEAR + 1, 1)


def partition_name(month: date) -> str:
    """`readings_y2026m03`: the partition holding that month's readings."""
    return f"{PARENT}_y{month.year:04d}m{month.month:02d}"


def ensure_partitions(
    conn: psycopg.Connection[Any], months: Iterable[datetime | date]
) -> list[str]:
    """Create the monthly partitions of `readings` for `months` that are missing.

    Runs in the caller's transaction when there is one (the loader's), so a partition exists
    exactly when the rows that needed it are committed. Returns the names it created.
    """
    wanted = sorted({month_of(m) for m in months})
    if not wanted:
        return []
    created: list[str] = []
    with translated():
        missing = _missing(conn, wanted)  # the common case: all there, no lock, no transaction
        if not missing:
            return created
        with conn.transaction():
            for month in missing:
                # The lock lasts until the outer transaction ends, so a concurrent creator of the
                # same month waits for our commit (or rollback), then re-checks and finds it.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)",
                    (PARTITION_LOCK_CLASS, month.year * 100 + month.month),
                )
                if _missing(conn, [month]) and _create(conn, month):
                    created.append(partition_name(month))
    return created


def ensure_partitions_around(
    conn: psycopg.Connection[Any], now: datetime, *, behind: int = 1, ahead: int = 3
) -> list[str]:
    """Create the partitions from `behind` months before `now`'s month to `ahead` months after."""
    current = month_of(now)
    return ensure_partitions(conn, [add_months(current, n) for n in range(-behind, ahead + 1)])


def list_partitions(conn: psycopg.Connection[Any]) -> list[str]:
    """Names of the existing partitions of `readings`, oldest month first."""
    with translated():
        rows = conn.execute(
            """
            SELECT c.relname FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass(%s)
            ORDER BY c.relname
            """,
            (PARENT,),
        ).fetchall()
    return [row[0] for row in rows]


def _missing(conn: psycopg.Connection[Any], months: list[date]) -> list[date]:
    # A scan of pg_inherits with this statement's snapshot, not a syscache lookup (to_regclass):
    # it sees a concurrent creator's commit even inside our own transaction.
    rows = conn.execute(
        """
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = %s::regclass AND c.relname = ANY(%s)
        """,
        (PARENT, [partition_name(m) for m in months]),
    ).fetchall()
    present = {row[0] for row in rows}
    return [m for m in months if partition_name(m) not in present]


def _create(conn: psycopg.Connection[Any], month: date) -> bool:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end_month = add_months(month, 1)
    end = datetime(end_month.year, end_month.month, 1, tzinfo=UTC)
    statement = sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
        sql.Identifier(partition_name(month)),
        sql.Identifier(PARENT),
        sql.Literal(start),
        sql.Literal(end),
    )
    try:
        # A savepoint, so that a partition made by hand without our lock costs only this step.
        with conn.transaction():
            conn.execute(statement)
    except pg_errors.DuplicateTable:
        return False
    return True
