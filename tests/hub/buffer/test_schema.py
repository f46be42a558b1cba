from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from hub.buffer import (
    SCHEMA_VERSION,
    Buffer,
    BufferNotFound,
    HubBufferError,
    NotABuffer,
    SchemaTooNew,
    StorageError,
    schema,
)
from hub.buffer.schema import APPLICATION_ID, MIGRATIONS


def pragma(path, name: str):
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_a_fresh_file_is_migrated_to_the_current_version(config) -> None:
    with Buffer.open(config):
        pass

    assert SCHEMA_VERSION == len(MIGRATIONS) == pragma(config.path, "user_version")
    assert pragma(config.path, "application_id") == APPLICATION_ID
    assert pragma(config.path, "journal_mode") == "wal"
    with sqlite3.connect(config.path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        views = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='view'")}
    assert {"reading_rows", "batches", "delivered_kinds", "devices", "encounters", "meta"} <= tables
    assert "readings" in views  # the v1/v2 shape, for read-only tools


async def test_reopening_keeps_the_data(config, make_reading) -> None:
    reading = make_reading()
    buf = Buffer.open(config)
    await buf.insert(reading, dedupe_key="k")
    await buf.aclose()

    buf = Buffer.open(config)
    try:
        assert [p.id for p in buf.iter_unsent()] == [reading.id]
        assert await buf.insert(reading, dedupe_key="k") == "duplicate"
    finally:
        await buf.aclose()
    assert pragma(config.path, "user_version") == SCHEMA_VERSION


def test_a_newer_schema_is_refused_untouched(config) -> None:
    with Buffer.open(config):
        pass
    with sqlite3.connect(config.path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(SchemaTooNew, match="upgrade the hub software") as info:
        Buffer.open(config)

    assert (info.value.found, info.value.known) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert pragma(config.path, "user_version") == SCHEMA_VERSION + 1


def test_another_applications_database_is_refused(config) -> None:
    with sqlite3.connect(config.path) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(NotABuffer, match="refusing to adopt"):
        Buffer.open(config)

    config.path.unlink()
    with sqlite3.connect(config.path) as conn:
        conn.execute("PRAGMA application_id = 42")
        conn.execute("PRAGMA user_version = 1")
    with pytest.raises(NotABuffer, match="another application"):
        Buffer.open(config)


def test_a_failed_migration_leaves_the_file_as_it_was(config, monkeypatch) -> None:
    broken = (*MIGRATIONS[0], "CREATE TABLE readings (oops)")  # fails at the very end
    monkeypatch.setattr(schema, "MIGRATIONS", (broken,))

    with pytest.raises(StorageError):
        Buffer.open(config)

    assert pragma(config.path, "user_version") == 0
    with sqlite3.connect(config.path) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0


def test_not_a_database_and_missing_directory(tmp_path, config) -> None:
    config.path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HubBufferError):
        Buffer.open(config)

    with pytest.raises(BufferNotFound):
        Buffer.open(replace(config, path=tmp_path / "missing" / "buffer.sqlite3"))
