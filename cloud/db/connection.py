"""Opening connections and pools, and translating psycopg's exceptions into `cloud.db.errors`.

Every public function of `cloud.db` runs its database work inside `translated()`, so callers see
only `CloudError` subclasses. The ingestor and the API build one pool in their composition root
(`open_pool`) and borrow connections with `pooled()`.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from cloud.db.errors import (
    DatabaseConflict,
    DatabaseError,
    DatabaseUnavailable,
    DataRefused,
    SchemaError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from cloud.config import DatabaseSettings

CONNECT_TIMEOUT_S = 10
"""Seconds libpq waits for a server before giving up, unless the URL says otherwise."""
APPLICATION_NAME = "tecsa-cloud"

_SCHEMA_STATES = (
    pg_errors.UndefinedTable,
    pg_errors.UndefinedColumn,
    pg_errors.UndefinedFunction,
    pg_errors.UndefinedObject,
)


def connect(conninfo: str, *, application_name: str = APPLICATION_NAME) -> psycopg.Connection:
    """Open an autocommit connection (a `postgresql://` URL or libpq key=value string).

    Autocommit, because every function of `cloud.db` that writes runs its own transaction and has
    committed when it returns: that is what lets the ingestor ack right after `store_batch`.
    """
    with translated():
        return psycopg.connect(_with_defaults(conninfo, application_name), autocommit=True)


def open_pool(
    settings: DatabaseSettings, *, application_name: str = APPLICATION_NAME
) -> ConnectionPool:
    """Build and open a pool of autocommit connections sized by `settings`; close it at exit."""
    with translated():
        pool: ConnectionPool = ConnectionPool(
            _with_defaults(settings.url.get_secret_value(), application_name),
            min_size=1,
            max_size=settings.pool_max,
            open=False,
            name=application_name,
            kwargs={"autocommit": True},
        )
        pool.open()
        return pool


@contextmanager
def pooled(pool: ConnectionPool, *, timeout: float | None = None) -> Iterator[psycopg.Connection]:
    """Borrow a connection from `pool`; `DatabaseUnavailable` when none comes within `timeout`."""
    with translated(), pool.connection(timeout=timeout) as conn:
        yield conn


@contextmanager
def translated() -> Iterator[None]:
    """Turn any psycopg exception raised inside the block into a `DatabaseError` subclass."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc) from exc


def require_idle(conn: psycopg.Connection[Any], what: str) -> None:
    """Refuse to run `what` inside a transaction someone else opened: it must commit on return."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise DatabaseError(
            f"{what} commits its own transaction, but the connection is inside one "
            f"({conn.info.transaction_status.name}): use an autocommit connection "
            "(cloud.db.connect)"
        )


_MISSING_DATABASE = re.compile(r'database "([^"]+)" does not exist')


def translate(exc: psycopg.Error) -> DatabaseError:
    """The `DatabaseError` that tells a caller what it can do about `exc`."""
    sqlstate = exc.sqlstate
    detail = _describe(exc)
    # Class 40 (transaction rollback: serialization failure, deadlock). psycopg's classes for its
    # members do not derive from TransactionRollback, so the SQLSTATE class decides.
    if sqlstate is not None and sqlstate.startswith("40"):
        return DatabaseConflict(f"transaction rolled back, retry: {detail}", sqlstate=sqlstate)
    missing = _MISSING_DATABASE.search(detail)
    if missing is not None:  # SQLSTATE 3D000, reported by libpq as a connection failure
        return SchemaError(
            f"database {missing.group(1)!r} does not exist: create it first "
            f"(createdb {missing.group(1)}, or CREATE DATABASE), then run tecsa-cloud db upgrade",
            sqlstate=sqlstate or "3D000",
        )
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return DatabaseUnavailable(f"PostgreSQL is unavailable: {detail}", sqlstate=sqlstate)
    if isinstance(exc, _SCHEMA_STATES):
        return SchemaError(
            f"the database schema is missing or out of date (run: tecsa-cloud db upgrade): "
            f"{detail}",
            sqlstate=sqlstate,
        )
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return DataRefused(f"PostgreSQL refused the data: {detail}", sqlstate=sqlstate)
    return DatabaseError(f"database error: {detail}", sqlstate=sqlstate)


def _describe(exc: psycopg.Error) -> str:
    # libpq's connection messages span lines ("connection to server ... failed: ...\n\tIs the
    # server running..."); one line is what a log line or a terminal wants.
    return " ".join(str(exc).split()) or type(exc).__name__


def _with_defaults(conninfo: str, application_name: str) -> str:
    given = conninfo_to_dict(conninfo)
    extra: dict[str, str | int] = {}
    if "connect_timeout" not in given:
        extra["connect_timeout"] = CONNECT_TIMEOUT_S
    if "application_name" not in given:
        extra["application_name"] = application_name
    return make_conninfo(conninfo, **extra)
