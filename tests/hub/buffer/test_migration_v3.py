"""Schema version 3 (delivery per batch): a version 2 file upgrades with every reading's state."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta
from uuid import UUID

import pytest
from buffer_testkit import T0
from typer.testing import CliRunner

from hub.buffer import SCHEMA_VERSION, Buffer, Priority, SchemaTooOld
from hub.buffer.cli import buffer_app
from hub.buffer.schema import APPLICATION_ID, MIGRATIONS, open_reader
from hub.buffer.values import to_db_time

IN_FLIGHT = UUID("019de28d-3c00-7000-8000-00000000000a")
ACKED = UUID("019de28d-3c00-7000-8000-00000000000b")
REJECTED = UUID("019de28d-3c00-7000-8000-00000000000c")
BY_HAND = UUID("019de28d-3c00-7000-8000-00000000000d")
DELIVERED_AT = to_db_time(T0 + timedelta(minutes=5))


def _v2_file(path, readings) -> None:
    """A version 2 buffer as the v2 code left it: rows in every delivery state."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN")
        for migration in MIGRATIONS[:2]:
            for statement in migration:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 2")
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        # Each row: the reading, its priority, its batch and when it was delivered.
        states = [
            (readings[0], 1, None, None),  # unsent, in no batch
            (readings[1], 0, None, None),  # unsent alert
            (readings[2], 1, IN_FLIGHT, None),
            (readings[3], 1, IN_FLIGHT, None),
            (readings[4], 1, ACKED, DELIVERED_AT),
            (readings[5], 1, ACKED, DELIVERED_AT),
            (readings[6], 1, REJECTED, None),
            (readings[7], 2, BY_HAND, None),  # assigned with assign_batch, no outbox row
        ]
        for i, (reading, priority, batch, delivered) in enumerate(states):
            body = reading.model_dump_json()
            conn.execute(
                "INSERT INTO readings (id, dedupe_key, device_id, kind, patient_id, received_at,"
                " measured_at, priority, nbytes, json, batch_id, delivered_at)"
                " VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
                (
                    str(reading.id),
                    f"key-{i}",
                    reading.device_id,
                    reading.kind,
                    reading.patient_id,
                    to_db_time(reading.received_at),
                    priority,
                    len(body.encode()),
                    body,
                    None if batch is None else str(batch),
                    delivered,
                ),
            )
        outbox = [
            (0, ACKED, None, 2, "acked", DELIVERED_AT, "stored"),
            (1, IN_FLIGHT, b"sealed-1", 2, "in_flight", None, None),
            (2, REJECTED, b"sealed-2", 1, "rejected", DELIVERED_AT, "rejected"),
        ]
        for seq, batch, sealed, n, state, acked, status in outbox:
            conn.execute(
                "INSERT INTO outbox (seq, batch_id, priority, created_at, sealed, readings, state,"
                " acked_at, ack_status) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?)",
                (seq, str(batch), to_db_time(T0), sealed, n, state, acked, status),
            )
        conn.execute("INSERT INTO meta (key, value) VALUES ('outbox_next_seq', '3')")
        conn.execute("COMMIT")


def _view(path) -> dict[str, tuple[str | None, str | None]]:
    with closing(sqlite3.connect(path)) as conn:
        return {
            row[0]: (row[1], row[2])
            for row in conn.execute("SELECT id, batch_id, delivered_at FROM readings")
        }


async def test_a_v2_file_upgrades_with_the_same_states(config, make_reading) -> None:
    readings = [make_reading(at=T0 + timedelta(seconds=i)) for i in range(8)]
    _v2_file(config.path, readings)
    before = _view(config.path)
    nbytes = [len(r.model_dump_json().encode()) for r in readings]

    buf = Buffer.open(config)
    try:
        # The old shape still reads the same (demo/run.py and other tools read `readings`).
        assert _view(config.path) == before
        assert [p.id for p in buf.iter_unsent()] == [readings[1].id, readings[0].id]
        assert [p.id for p in buf.batch_rows(IN_FLIGHT)] == [readings[2].id, readings[3].id]
        assert [p.id for p in buf.batch_rows(REJECTED)] == [readings[6].id]
        assert [p.id for p in buf.batch_rows(BY_HAND)] == [readings[7].id]
        assert buf.batch_rows(ACKED) == []
        assert buf.unsent_bytes == sum(nbytes) - nbytes[4] - nbytes[5]
        stats = buf.stats()
        assert (stats.total, stats.unsent, stats.in_flight, stats.delivered) == (8, 6, 4, 2)
        assert stats.unsent_bytes == buf.unsent_bytes
        assert stats.oldest_unsent_received_at == readings[0].received_at
        assert stats.schema_version == SCHEMA_VERSION >= 3
        status = buf.uplink_status()
        assert (status.unsent, status.waiting) == (6, 2)
        assert (status.in_flight_batches, status.rejected_batches, status.acked_batches) == (
            1,
            1,
            1,
        )
        [flight] = buf.in_flight_batches()
        assert (flight.batch_id, flight.sealed) == (IN_FLIGHT, b"sealed-1")

        # The migrated in-flight batch is delivered by its verified ack, as a whole.
        result = await buf.ack_batch(IN_FLIGHT, seq=1, status="stored", reason=None, at=T0)
        assert result.delivered == 2
        assert _view(config.path)[str(readings[2].id)] == (str(IN_FLIGHT), to_db_time(T0))
        assert await buf.mark_delivered(BY_HAND, at=T0) == 1
        assert await buf.release_batch(REJECTED) == 1
        assert [p.id for p in buf.iter_unsent()] == [readings[1].id, readings[0].id, readings[6].id]
        stats = buf.stats()
        assert (stats.total, stats.unsent, stats.in_flight, stats.delivered) == (8, 3, 0, 5)
        assert buf.unsent_bytes == nbytes[0] + nbytes[1] + nbytes[6] == stats.unsent_bytes

        # Pruning removes v2-delivered rows and v3-delivered batches alike, never unsent rows.
        pruned = await buf.prune(now=T0 + config.retention + timedelta(days=1))
        assert pruned == 5
        stats = buf.stats()
        assert (stats.total, stats.unsent, stats.delivered) == (3, 3, 0)
    finally:
        await buf.aclose()


async def test_kinds_and_totals_follow_inserts_acks_and_pruning(buffer, make_reading) -> None:
    readings = [make_reading() for _ in range(6)]
    for i, reading in enumerate(readings):
        priority = Priority.ALERT if i == 5 else Priority.ROUTINE
        await buffer.insert(reading, dedupe_key=f"k{i}", priority=priority)
    await buffer.assign_batch(IN_FLIGHT, [r.id for r in readings[:3]])
    await buffer.mark_delivered(IN_FLIGHT, at=T0)
    assert await buffer.assign_batch(IN_FLIGHT, [readings[3].id]) == 0  # acked: closed for good
    stats = buffer.stats()
    assert (stats.total, stats.unsent, stats.delivered) == (6, 3, 3)
    kinds: dict[str, list[int]] = {}
    for i, reading in enumerate(readings):
        total, unsent = kinds.setdefault(reading.kind, [0, 0])
        kinds[reading.kind] = [total + 1, unsent + (i >= 3)]
    assert {k: [c.total, c.unsent] for k, c in stats.by_kind.items()} == kinds


def test_read_only_tools_on_a_file_not_yet_migrated_say_how_to_fix_it(config, make_reading) -> None:
    _v2_file(config.path, [make_reading(at=T0 + timedelta(seconds=i)) for i in range(8)])
    with pytest.raises(SchemaTooOld, match="start the hub daemon once"):
        open_reader(config.path)
    result = CliRunner().invoke(buffer_app, ["stats", "--db", str(config.path)])
    assert result.exit_code == 1
    assert "schema version 2" in result.stderr
    Buffer.open(config).close()  # the daemon's writer migrates it
    with closing(open_reader(config.path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 3
