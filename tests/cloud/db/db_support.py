"""Helpers shared by the cloud database tests: throwaway databases, headers, row readers."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from wire import (
    AuditEvent,
    Component,
    Compression,
    Counts,
    Header,
    MedicalRecord,
    Priority,
    Reading,
    TriageResult,
)
from wire.keys import key_id

CLOUD_KEY_ID = "00112233445566ff"
HUB_ID = "hub-test-01"


def header_for(body, *, hub_id, hub_key, batch_id, seq=1, created_at=None) -> Header:
    return Header(
        v=1,
        hub_id=hub_id,
        batch_id=batch_id,
        seq=seq,
        created_at=created_at or datetime(2026, 3, 1, 12, tzinfo=UTC),
        priority=Priority.ROUTINE,
        counts=Counts(**body.counts()),
        hub_key=key_id(hub_key),
        cloud_key=CLOUD_KEY_ID,
        epk="A" * 43,
        nonce="A" * 16,
        compression=Compression.ZSTD,
        body_len=1,
    )


def stored_readings(conn, **where) -> list[Reading]:
    clause = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    rows = conn.execute(
        "SELECT id, device_id, kind, components, device_time, measured_at_reported, received_at,"  # noqa: S608 - test helper, keys are literals
        " quality, patient_id, encounter_id, device_seq FROM readings"
        f" WHERE {clause} ORDER BY id",
        where,
    ).fetchall()
    return [
        Reading(
            id=r[0],
            device_id=r[1],
            kind=r[2],
            components={k: Component(**v) for k, v in r[3].items()},
            device_time=r[4],
            measured_at=r[5],
            received_at=r[6],
            quality=tuple(r[7]),
            patient_id=r[8],
            encounter_id=r[9],
            device_seq=r[10],
        )
        for r in rows
    ]


def stored_records(conn, table="medical_records") -> list[MedicalRecord]:
    rows = conn.execute(
        "SELECT id, revision, updated_at, patient_id, agent_id, type, payload, content_hash, flags"  # noqa: S608 - literal table names
        f" FROM {table} ORDER BY id, revision, content_hash"
    ).fetchall()
    return [
        MedicalRecord(
            id=r[0],
            revision=r[1],
            updated_at=r[2],
            patient_id=r[3],
            agent_id=r[4],
            type=r[5],
            payload=r[6],
            content_hash=r[7],
            flags=tuple(r[8]),
        )
        for r in rows
    ]


def stored_triage(conn) -> list[TriageResult]:
    rows = conn.execute(
        "SELECT id, patient_id, reading_ids, computed_at, band, score, news2_score,"
        " news2_subscores, complete, model_version, input_hash FROM triage_results ORDER BY id"
    ).fetchall()
    return [
        TriageResult(
            id=r[0],
            patient_id=r[1],
            reading_ids=tuple(r[2]),
            computed_at=r[3],
            band=r[4],
            score=r[5],
            news2_score=r[6],
            news2_subscores=r[7],
            complete=r[8],
            model_version=r[9],
            input_hash=r[10],
        )
        for r in rows
    ]


def stored_audit(conn) -> list[AuditEvent]:
    rows = conn.execute(
        "SELECT id, at, actor, action, detail FROM audit_events ORDER BY id"
    ).fetchall()
    return [AuditEvent(id=r[0], at=r[1], actor=r[2], action=r[3], detail=r[4]) for r in rows]


def count(conn, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - literal names
    return row[0]


def wait_for_waiter(conn, *, event: str | None = None, timeout: float = 10.0) -> int:
    """Wait until another backend of this database waits on a lock; return its pid.

    `event` narrows it to a lock type (`advisory`, `transactionid`, `relation`). Polls
    pg_stat_activity: a condition with a deadline, not a sleep standing in for timing.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            """
            SELECT pid FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND wait_event_type = 'Lock' AND (%(event)s::text IS NULL OR wait_event = %(event)s)
            LIMIT 1
            """,
            {"event": event},
        ).fetchone()
        if row:
            return row[0]
        conn.execute("SELECT pg_sleep(0.005)")
    raise AssertionError(f"no backend waited on a {event or 'any'} lock within {timeout} s")


def as_json(value) -> str:
    return json.dumps(value, sort_keys=True)
