"""Schema migrations: ordered SQL files in `cloud/db/migrations/`, applied once, never edited.

Each file `NNNN_name.sql` runs in its own transaction under a PostgreSQL advisory lock, so any
number of ingestors or operators may run `upgrade` at the same time: one applies, the others wait
and then find nothing to do. `schema_migrations` records each version with the file's sha256;
a changed applied file or a database newer than the code is refused before anything is touched.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime  # noqa: TC003 - a dataclass field type, kept importable
from importlib import resources
from typing import TYPE_CHECKING, Any

from cloud.db.connection import connect, translated
from cloud.db.errors import MigrationChecksumMismatch, SchemaError, SchemaTooNew

if TYPE_CHECKING:
    import psycopg

MIGRATION_LOCK = 0x7465_6373_6100_0001  # "tecsa" + 1: the advisory lock key of upgrades
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = b"""
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file shipped with this release."""

    version: int
    name: str
    sql: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the file's bytes, as recorded when applied."""
        return hashlib.sha256(self.sql).hexdigest()

    @property
    def label(self) -> str:
        """`0001_initial`: how people refer to it."""
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """A row of `schema_migrations`."""

    version: int
    name: str
    sha256: str
    applied_at: datetime


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a database stands relative to this release's migrations."""

    applied: tuple[AppliedMigration, ...]
    pending: tuple[Migration, ...]

    @property
    def version(self) -> int:
        """The highest applied version; 0 for an empty database."""
        return max((m.version for m in self.applied), default=0)

    @property
    def up_to_date(self) -> bool:
        """True when there is nothing left to apply."""
        return not self.pending


def migrations() -> tuple[Migration, ...]:
    """The migrations shipped in this package, in order; refuse gaps and stray names."""
    found: list[Migration] = []
    folder = resources.files("cloud.db").joinpath("migrations")
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise SchemaError(f"migration file name {entry.name!r} is not NNNN_name.sql")
        found.append(Migration(int(match["version"]), match["name"], entry.read_bytes()))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise SchemaError(
                f"migrations must be numbered 1, 2, 3, ... without gaps; found "
                f"{migration.label} where version {expected} was expected"
            )
    return tuple(found)


def upgrade(conninfo: str, *, available: tuple[Migration, ...] | None = None) -> list[Migration]:
    """Apply every pending migration in order; return those this call applied (maybe none)."""
    code = migrations() if available is None else available
    applied: list[Migration] = []
    with connect(conninfo) as conn, translated():
        while True:
            with conn.transaction():
                _lock(conn)
                done = _applied(conn)
                _verify(done, code)
                pending = [m for m in code if m.version not in done]
                if not pending:
                    return applied
                migration = pending[0]
                conn.execute(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.sha256),
                )
            applied.append(migration)


def schema_status(
    conn: psycopg.Connection[Any], *, available: tuple[Migration, ...] | None = None
) -> SchemaStatus:
    """Applied and pending migrations; raise if an applied one changed or the database is newer."""
    code = migrations() if available is None else available
    with translated():
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if exists is None or not exists[0]:
            return SchemaStatus(applied=(), pending=code)
        rows = conn.execute(
            "SELECT version, name, sha256, applied_at FROM schema_migrations ORDER BY version"
        ).fetchall()
    done = {row[0]: AppliedMigration(*row) for row in rows}
    _verify(done, code)
    return SchemaStatus(
        applied=tuple(done.values()), pending=tuple(m for m in code if m.version not in done)
    )


def check_schema(conn: psycopg.Connection[Any]) -> None:
    """Raise `SchemaError` unless the database has exactly this release's migrations applied.

    The ingestor and the API call it at start: they never migrate on their own.
    """
    status = schema_status(conn)
    if status.pending:
        raise SchemaError(
            f"the database is at schema version {status.version} and this release needs "
            f"{status.pending[-1].version}: run tecsa-cloud db upgrade"
        )


def _lock(conn: psycopg.Connection[Any]) -> None:
    # Transaction-scoped: released by the commit or the rollback, whatever happens to the process.
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    conn.execute(_CREATE_TABLE)


def _applied(conn: psycopg.Connection[Any]) -> dict[int, AppliedMigration]:
    rows = conn.execute(
        "SELECT version, name, sha256, applied_at FROM schema_migrations ORDER BY version"
    ).fetchall()
    return {row[0]: AppliedMigration(*row) for row in rows}


def _verify(done: dict[int, AppliedMigration], code: tuple[Migration, ...]) -> None:
    known = {m.version: m for m in code}
    newest = max(done, default=0)
    if any(version not in known for version in done):
        raise SchemaTooNew(found=newest, known=max(known, default=0))
    for version, row in done.items():
        migration = known[version]
        if row.sha256 != migration.sha256:
            raise MigrationChecksumMismatch(
                version=version, name=migration.name, recorded=row.sha256, actual=migration.sha256
            )
