"""Migrations against a real PostgreSQL: fresh, repeated, edited, newer, failing, concurrent."""

from __future__ import annotations

import threading

import psycopg
import pytest
from db_support import count, wait_for_waiter

from cloud.db import (
    DataRefused,
    MigrationChecksumMismatch,
    SchemaError,
    SchemaTooNew,
    check_schema,
    connect,
    migrations,
    schema_status,
    upgrade,
)
from cloud.db.schema import MIGRATION_LOCK, Migration

TABLES = {
    "hubs",
    "batches",
    "readings",
    "medical_records",
    "record_conflicts",
    "triage_results",
    "audit_events",
    "quarantine",
    "schema_migrations",
}


def _tables(conn):
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " UNION SELECT relname FROM pg_class WHERE relkind = 'p'"
    ).fetchall()
    return {r[0] for r in rows}


def test_shipped_migrations_are_numbered_from_one_without_gaps():
    shipped = migrations()
    assert [m.version for m in shipped] == list(range(1, len(shipped) + 1))
    assert shipped[0].label == "0001_initial"
    assert all(len(m.sha256) == 64 for m in shipped)


def test_upgrade_of_a_fresh_database_applies_everything_and_records_checksums(empty_db):
    applied = upgrade(empty_db)
    assert [m.label for m in applied] == [m.label for m in migrations()]
    with connect(empty_db) as conn:
        assert _tables(conn) >= TABLES
        rows = conn.execute("SELECT version, name, sha256 FROM schema_migrations").fetchall()
        assert rows == [(m.version, m.name, m.sha256) for m in migrations()]
        check_schema(conn)
        status = schema_status(conn)
    assert status.up_to_date
    assert status.version == len(migrations())


def test_upgrade_twice_does_nothing_the_second_time(empty_db):
    upgrade(empty_db)
    with connect(empty_db) as conn:
        before = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    assert upgrade(empty_db) == []
    with connect(empty_db) as conn:
        after = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    assert after == before


def test_an_edited_applied_migration_is_refused_before_anything_runs(empty_db):
    upgrade(empty_db)
    first = migrations()[0]
    edited = Migration(first.version, first.name, first.sql + b"\n-- edited\n")
    extra = Migration(len(migrations()) + 1, "extra", b"CREATE TABLE extra_table (x int);")
    with pytest.raises(MigrationChecksumMismatch) as caught:
        upgrade(empty_db, available=(edited, *migrations()[1:], extra))
    assert caught.value.version == 1
    assert caught.value.recorded == first.sha256
    assert caught.value.actual == edited.sha256
    assert isinstance(caught.value, SchemaError)
    assert not caught.value.retryable
    with connect(empty_db) as conn:
        assert "extra_table" not in _tables(conn)
        with pytest.raises(MigrationChecksumMismatch):
            schema_status(conn, available=(edited, *migrations()[1:]))


def test_a_new_migration_is_applied_on_top_and_older_code_refuses_the_newer_database(empty_db):
    upgrade(empty_db)
    shipped = len(migrations())
    extra = Migration(shipped + 1, "extra", b"CREATE TABLE extra_table (x int);")
    applied = upgrade(empty_db, available=(*migrations(), extra))
    assert [m.label for m in applied] == [f"{shipped + 1:04d}_extra"]
    with pytest.raises(SchemaTooNew) as caught:
        upgrade(empty_db)
    assert (caught.value.found, caught.value.known) == (shipped + 1, shipped)
    with connect(empty_db) as conn, pytest.raises(SchemaTooNew):
        check_schema(conn)


def test_a_failing_migration_leaves_nothing_behind(empty_db):
    upgrade(empty_db)
    broken = Migration(
        len(migrations()) + 1, "broken", b"CREATE TABLE half_done (x int); SELECT 1 / 0;"
    )
    with pytest.raises(DataRefused):
        upgrade(empty_db, available=(*migrations(), broken))
    with connect(empty_db) as conn:
        assert "half_done" not in _tables(conn)
        assert schema_status(conn).version == len(migrations())


def test_an_empty_database_is_reported_as_needing_an_upgrade(empty_db):
    with connect(empty_db) as conn:
        status = schema_status(conn)
        assert status.applied == ()
        assert status.pending == migrations()
        with pytest.raises(SchemaError, match="tecsa-cloud db upgrade"):
            check_schema(conn)


def test_concurrent_upgraders_both_succeed_and_apply_each_migration_once(empty_db):
    barrier = threading.Barrier(2)
    results: list[list[Migration]] = []
    errors: list[BaseException] = []

    def run():
        barrier.wait(timeout=10)
        try:
            results.append(upgrade(empty_db))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    # Each migration runs under the lock in its own transaction: the two upgraders may share the
    # work, but together they apply every migration exactly once.
    applied = sorted(m.label for r in results for m in r)
    assert applied == [m.label for m in migrations()]
    with connect(empty_db) as conn:
        assert count(conn, "schema_migrations") == len(migrations())


def test_migrations_are_serialised_by_the_advisory_lock(empty_db):
    # A second upgrader waits while another holds the lock, then finds nothing to do.
    upgrade(empty_db)
    with psycopg.connect(empty_db) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        result: list[list[Migration]] = []
        t = threading.Thread(target=lambda: result.append(upgrade(empty_db)))
        t.start()
        with connect(empty_db) as watcher:
            wait_for_waiter(watcher, event="advisory")
        assert result == []
        holder.rollback()
        t.join(timeout=10)
    assert result == [[]]
