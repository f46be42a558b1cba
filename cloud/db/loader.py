"""Loading opened batches into PostgreSQL, once: the cloud half of the delivery guarantee.

`store_batch` runs one transaction. It first claims the batch_id in `batches` (INSERT ... ON
CONFLICT DO NOTHING): a batch stored before, or being stored right now by another ingestor, makes
the claim wait for that transaction and then return "duplicate" without touching anything else.
Having claimed it, it creates the partitions the readings need, COPYs each kind of item into a
temporary staging table and moves it with INSERT ... SELECT ... ON CONFLICT DO NOTHING, counting
what was new and what was stored already (an item may arrive again in another batch), and
records the counts on the batch row. Commit, then the ingestor may ack. See docs/cloud-db.md.

Readings, the bulk of every batch, first take a fast path: one binary COPY straight into
`readings` inside a savepoint. A batch whose readings are all new (the common case) is then
stored at the cost of a plain COPY; if any reading is stored already the COPY fails on the
primary key, the savepoint is rolled back, and the staging path above counts them exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from psycopg import errors as pg_errors
from psycopg import postgres, pq
from psycopg.adapt import Dumper
from pydantic_core import to_json

from cloud.db.connection import require_idle, translated
from cloud.db.errors import UnknownHub
from cloud.db.partitions import ensure_partitions

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime
    from uuid import UUID

    import psycopg

    from wire.envelope import Header
    from wire.items import AuditEvent, Body, MedicalRecord, Reading, TriageResult


@dataclass(frozen=True, slots=True)
class KindCounts:
    """What happened to the items of one kind: newly stored, or stored before."""

    inserted: int = 0
    duplicate: int = 0


@dataclass(frozen=True, slots=True)
class StoreResult:
    """The outcome of `store_batch`; `duplicate` means the batch itself was stored before."""

    status: Literal["stored", "duplicate"]
    readings: KindCounts
    medical_records: KindCounts
    triage_results: KindCounts
    audit_events: KindCounts
    record_conflicts: int = 0
    """Medical record revisions stored aside because the same id and revision exist with other
    content (not counted in `medical_records`)."""

    @property
    def inserted(self) -> int:
        """Items of every kind newly stored by this call."""
        kinds = (self.readings, self.medical_records, self.triage_results, self.audit_events)
        return sum(k.inserted for k in kinds)


@dataclass(frozen=True, slots=True)
class _Table:
    """A staging table: its columns and their COPY types, and the INSERT that moves its rows."""

    name: str
    columns: tuple[tuple[str, str], ...]
    """(name, type) in COPY order. JSON travels as text and is cast by the INSERT: psycopg's
    binary jsonb dumper would serialise the text again, and text is what we have already."""
    insert: str

    @property
    def create(self) -> str:
        """CREATE TEMP TABLE IF NOT EXISTS, ON COMMIT DELETE ROWS."""
        ddl = ", ".join(f"{name} {kind}" for name, kind in self.columns)
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.name} ({ddl}) ON COMMIT DELETE ROWS"


def store_batch(
    conn: psycopg.Connection[Any],
    header: Header,
    body: Body,
    *,
    s3_key: str,
    received_at: datetime,
    size: int | None = None,
) -> StoreResult:
    """Store a verified, opened batch exactly once, in one transaction; see the module docstring.

    Raises `UnknownHub` when the header's hub is not registered, `DataRefused` when PostgreSQL
    refuses the content (quarantine it), and the retryable `DatabaseUnavailable` or
    `DatabaseConflict` when the batch should be tried again later. Nothing is stored on error.
    Runs on a connection with no open transaction (autocommit): it has committed when it returns.
    """
    require_idle(conn, "store_batch")
    with translated(), conn.transaction():
        if not _claim(conn, header, s3_key=s3_key, received_at=received_at, size=size):
            return _duplicate(body)
        ensure_partitions(conn, _months(body.readings))
        params = {"hub_id": header.hub_id, "batch_id": header.batch_id}
        readings = _load_readings(conn, body.readings, params)
        records, conflicts = _load_records(conn, body.medical_records, params)
        triage = _load(conn, _TRIAGE, [_triage_row(t) for t in body.triage_results], params)
        audit = _load(conn, _AUDIT, [_audit_row(a) for a in body.audit_events], params)
        result = StoreResult(
            status="stored",
            readings=readings,
            medical_records=records,
            triage_results=triage,
            audit_events=audit,
            record_conflicts=conflicts,
        )
        conn.execute(_RECORD_COUNTS, _counts_params(header.batch_id, result))
    return result


def reject_batch(
    conn: psycopg.Connection[Any],
    header: Header,
    *,
    reason: str,
    s3_key: str,
    size: int,
    received_at: datetime,
) -> bool:
    """Record and quarantine an authentic but invalid batch; False when decided before.

    "Decided before" means its batch_id is in `batches` already, stored or rejected. Only for
    batches whose signature verified: the batch_id of an unverified header must never reach
    `batches`, or a forger could turn the real batch into a "duplicate".
    """
    require_idle(conn, "reject_batch")
    with translated(), conn.transaction():
        row = conn.execute(
            _CLAIM,
            _claim_params(header, s3_key=s3_key, received_at=received_at, size=size)
            | {"status": "rejected", "reason": reason},
        ).fetchone()
        if row is None:
            return False
        quarantine_batch(
            conn,
            hub_id=header.hub_id,
            batch_id=header.batch_id,
            reason=reason,
            s3_key=s3_key,
            size=size,
            received_at=received_at,
        )
    return True


def quarantine_batch(
    conn: psycopg.Connection[Any],
    *,
    hub_id: str | None,
    batch_id: UUID | None,
    reason: str,
    s3_key: str,
    size: int,
    received_at: datetime,
) -> int:
    """Record a batch that could not be verified, opened or validated; return its quarantine id.

    `hub_id` and `batch_id` are what the header claimed (None when it could not be read); they
    are kept for the operator and trusted for nothing.
    """
    with translated(), conn.transaction():
        row = conn.execute(
            """
            INSERT INTO quarantine (received_at, hub_id, batch_id, reason, s3_key, size)
            VALUES (%s, %s, %s, %s, %s, %s) RETURNING id
            """,
            (received_at, hub_id, batch_id, reason, s3_key, size),
        ).fetchone()
    if row is None:  # pragma: no cover - INSERT ... RETURNING always returns the row
        raise AssertionError("INSERT RETURNING returned nothing")
    return int(row[0])


@dataclass(frozen=True, slots=True)
class DecidedBatch:
    """A batch the cloud decided on before: stored, or rejected with a reason."""

    batch_id: UUID
    hub_id: str
    seq: int
    status: Literal["stored", "rejected"]
    reason: str | None
    items: int
    """Items the header announced, over all kinds."""


def find_batch(conn: psycopg.Connection[Any], batch_id: UUID) -> DecidedBatch | None:
    """The decision recorded for `batch_id`, or None: the ingestor's cheap duplicate check.

    One primary-key lookup; it sees only committed batches (a batch being stored right now by
    another ingestor is not found, and `store_batch` sorts that race out).
    """
    with translated():
        row = conn.execute(
            """
            SELECT batch_id, hub_id, seq, status, reason,
                count_readings + count_medical_records + count_triage_results
                    + count_audit_events
            FROM batches WHERE batch_id = %s
            """,
            (batch_id,),
        ).fetchone()
    if row is None:
        return None
    return DecidedBatch(
        batch_id=row[0], hub_id=row[1], seq=row[2], status=row[3], reason=row[4], items=row[5]
    )


# -- private ----------------------------------------------------------------------------------

_CLAIM = """
INSERT INTO batches (
    batch_id, hub_id, seq, created_at, received_at, status, reason, priority, hub_key,
    cloud_key, s3_key, size,
    count_readings, count_medical_records, count_triage_results, count_audit_events
) VALUES (
    %(batch_id)s, %(hub_id)s, %(seq)s, %(created_at)s, %(received_at)s, %(status)s, %(reason)s,
    %(priority)s, %(hub_key)s, %(cloud_key)s, %(s3_key)s, %(size)s,
    %(readings)s, %(medical_records)s, %(triage_results)s, %(audit_events)s
)
ON CONFLICT (batch_id) DO NOTHING
RETURNING batch_id
"""

_RECORD_COUNTS = """
UPDATE batches SET
    readings_inserted = %(readings_inserted)s,
    readings_duplicate = %(readings_duplicate)s,
    medical_records_inserted = %(medical_records_inserted)s,
    medical_records_duplicate = %(medical_records_duplicate)s,
    medical_records_conflict = %(medical_records_conflict)s,
    triage_results_inserted = %(triage_results_inserted)s,
    triage_results_duplicate = %(triage_results_duplicate)s,
    audit_events_inserted = %(audit_events_inserted)s,
    audit_events_duplicate = %(audit_events_duplicate)s
WHERE batch_id = %(batch_id)s
"""

_READINGS = _Table(
    name="tecsa_load_readings",
    columns=(
        ("id", "uuid"),
        ("measured_at_reported", "timestamptz"),
        ("received_at", "timestamptz"),
        ("device_time", "timestamp"),
        ("device_id", "text"),
        ("kind", "text"),
        ("components", "text"),  # JSON text: cast to jsonb by the INSERT
        ("quality", "text[]"),
        ("patient_id", "text"),
        ("encounter_id", "uuid"),
        ("device_seq", "int8"),
    ),
    insert="""
        INSERT INTO readings (
            id, measured_at, measured_at_reported, received_at, device_time, device_id, kind,
            components, quality, patient_id, encounter_id, device_seq, hub_id, batch_id
        )
        SELECT id, coalesce(measured_at_reported, received_at), measured_at_reported,
            received_at, device_time, device_id, kind, components::jsonb, quality, patient_id,
            encounter_id, device_seq, %(hub_id)s, %(batch_id)s
        FROM tecsa_load_readings
        ON CONFLICT DO NOTHING
    """,
)

_RECORDS = _Table(
    name="tecsa_load_records",
    columns=(
        ("id", "uuid"),
        ("revision", "int4"),
        ("updated_at", "timestamptz"),
        ("patient_id", "text"),
        ("agent_id", "text"),
        ("type", "text"),
        ("payload", "text"),  # JSON text
        ("content_hash", "text"),
        ("flags", "text[]"),
    ),
    insert="""
        INSERT INTO medical_records (
            id, revision, updated_at, patient_id, agent_id, type, payload, content_hash, flags,
            hub_id, batch_id
        )
        SELECT id, revision, updated_at, patient_id, agent_id, type, payload::jsonb,
            content_hash, flags, %(hub_id)s, %(batch_id)s
        FROM tecsa_load_records
        ON CONFLICT DO NOTHING
    """,
)
# Run after _RECORDS.insert, as a new statement: it sees what that one (or a concurrent loader
# that committed meanwhile) stored, so only versions that differ from the stored one land here.
_RECORD_CONFLICTS = """
INSERT INTO record_conflicts (
    id, revision, updated_at, patient_id, agent_id, type, payload, content_hash, flags,
    hub_id, batch_id
)
SELECT t.id, t.revision, t.updated_at, t.patient_id, t.agent_id, t.type, t.payload::jsonb,
    t.content_hash, t.flags, %(hub_id)s, %(batch_id)s
FROM tecsa_load_records t JOIN medical_records m USING (id, revision)
WHERE m.content_hash <> t.content_hash
ON CONFLICT DO NOTHING
"""
_FLAG_CONFLICTS = """
UPDATE medical_records m SET has_conflict = true
FROM tecsa_load_records t
WHERE m.id = t.id AND m.revision = t.revision AND m.content_hash <> t.content_hash
    AND NOT m.has_conflict
"""

_TRIAGE = _Table(
    name="tecsa_load_triage",
    columns=(
        ("id", "uuid"),
        ("patient_id", "text"),
        ("reading_ids", "uuid[]"),
        ("computed_at", "timestamptz"),
        ("band", "text"),
        ("score", "float8"),
        ("news2_score", "int2"),
        ("news2_subscores", "text"),  # JSON text
        ("complete", "bool"),
        ("model_version", "text"),
        ("input_hash", "text"),
        ("window_s", "int4"),
        ("at", "timestamptz"),
    ),
    insert="""
        INSERT INTO triage_results (
            id, patient_id, reading_ids, computed_at, band, score, news2_score,
            news2_subscores, complete, model_version, input_hash, window_s, at, hub_id, batch_id
        )
        SELECT id, patient_id, reading_ids, computed_at, band, score, news2_score,
            news2_subscores::jsonb, complete, model_version, input_hash, window_s, at,
            %(hub_id)s, %(batch_id)s
        FROM tecsa_load_triage
        ON CONFLICT DO NOTHING
    """,
)

_AUDIT = _Table(
    name="tecsa_load_audit",
    columns=(
        ("id", "uuid"),
        ("at", "timestamptz"),
        ("actor", "text"),
        ("action", "text"),
        ("detail", "text"),  # JSON text
    ),
    insert="""
        INSERT INTO audit_events (id, at, actor, action, detail, hub_id, batch_id)
        SELECT id, at, actor, action, detail::jsonb, %(hub_id)s, %(batch_id)s
        FROM tecsa_load_audit
        ON CONFLICT DO NOTHING
    """,
)


def _claim(
    conn: psycopg.Connection[Any],
    header: Header,
    *,
    s3_key: str,
    received_at: datetime,
    size: int | None,
) -> bool:
    params = _claim_params(header, s3_key=s3_key, received_at=received_at, size=size)
    try:
        row = conn.execute(_CLAIM, params).fetchone()
    except pg_errors.ForeignKeyViolation:  # the transaction is rolled back on the way out
        raise UnknownHub(header.hub_id) from None
    return row is not None


def _claim_params(
    header: Header, *, s3_key: str, received_at: datetime, size: int | None
) -> dict[str, object]:
    return {
        "batch_id": header.batch_id,
        "hub_id": header.hub_id,
        "seq": header.seq,
        "created_at": header.created_at,
        "received_at": received_at,
        "priority": header.priority.value,
        "hub_key": header.hub_key,
        "cloud_key": header.cloud_key,
        "s3_key": s3_key,
        "size": size,
        "status": "stored",
        "reason": None,
        **header.counts.model_dump(),
    }


def _load(
    conn: psycopg.Connection[Any],
    table: _Table,
    rows: Sequence[Sequence[object]],
    params: dict[str, object],
) -> KindCounts:
    if not rows:
        return KindCounts()
    _stage(conn, table, rows)
    inserted = conn.execute(table.insert, params).rowcount
    return KindCounts(inserted=inserted, duplicate=len(rows) - inserted)


def _load_readings(
    conn: psycopg.Connection[Any], readings: Sequence[Reading], params: dict[str, object]
) -> KindCounts:
    """COPY straight into `readings` when they are all new, else stage and count duplicates."""
    if not readings:
        return KindCounts()
    rows = [_reading_row(r) for r in readings]
    try:
        with conn.transaction():  # a savepoint: a failed COPY leaves the batch's claim intact
            _copy_readings(conn, rows, params)
    except pg_errors.UniqueViolation:
        # Some reading was stored before (another batch carried it): count them exactly.
        return _load(conn, _READINGS, rows, params)
    return KindCounts(inserted=len(rows))


def _copy_readings(
    conn: psycopg.Connection[Any], rows: Sequence[Sequence[object]], params: dict[str, object]
) -> None:
    hub_id, batch_id = params["hub_id"], params["batch_id"]
    with conn.cursor() as cur:
        cur.adapters.register_dumper(str, _JsonTextDumper)  # only for the jsonb column below
        with cur.copy(_COPY_READINGS) as copy:
            copy.set_types(_COPY_READINGS_TYPES)
            write = copy.write_row
            for row in rows:
                # _READINGS' columns, with measured_at (the partition key) computed as the
                # table's CHECK wants it, then the batch's hub and id.
                write((row[0], row[1] or row[2], *row[1:], hub_id, batch_id))


class _JsonTextDumper(Dumper):
    """Already serialised JSON text as binary jsonb (a version byte, then the text)."""

    format = pq.Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:  # noqa: ANN401 - psycopg's dumper signature
        return b"\x01" + str(obj).encode()


_COPY_READINGS = (
    "COPY readings (id, measured_at, measured_at_reported, received_at, device_time, "
    "device_id, kind, components, quality, patient_id, encounter_id, device_seq, hub_id, "
    "batch_id) FROM STDIN (FORMAT BINARY)"
)
_COPY_READINGS_TYPES = [
    "uuid", "timestamptz", "timestamptz", "timestamptz", "timestamp", "text", "text", "jsonb",
    "text[]", "text", "uuid", "int8", "text", "uuid",
]  # fmt: skip


def _load_records(
    conn: psycopg.Connection[Any], records: Sequence[MedicalRecord], params: dict[str, object]
) -> tuple[KindCounts, int]:
    if not records:
        return KindCounts(), 0
    _stage(conn, _RECORDS, [_record_row(r) for r in records])
    inserted = conn.execute(_RECORDS.insert, params).rowcount
    conflicts = conn.execute(_RECORD_CONFLICTS, params).rowcount
    if conflicts:
        conn.execute(_FLAG_CONFLICTS)
    counts = KindCounts(inserted=inserted, duplicate=len(records) - inserted - conflicts)
    return counts, conflicts


def _stage(conn: psycopg.Connection[Any], table: _Table, rows: Iterable[Sequence[object]]) -> None:
    # A session-lived staging table emptied by every commit (and by any rollback): creating and
    # dropping one per batch cost 4-5 ms of catalog churn in a 22 ms batch (docs/cloud-db.md).
    # Temporary tables die with their session, so a new release never meets an old definition.
    # Binary COPY: measured 35% faster than text here.
    conn.execute(table.create)
    with conn.cursor() as cur, cur.copy(f"COPY {table.name} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([kind for _, kind in table.columns])
        for row in rows:
            copy.write_row(row)


def _duplicate(body: Body) -> StoreResult:
    return StoreResult(
        status="duplicate",
        readings=KindCounts(duplicate=len(body.readings)),
        medical_records=KindCounts(duplicate=len(body.medical_records)),
        triage_results=KindCounts(duplicate=len(body.triage_results)),
        audit_events=KindCounts(duplicate=len(body.audit_events)),
    )


def _counts_params(batch_id: UUID, result: StoreResult) -> dict[str, object]:
    params: dict[str, object] = {"batch_id": batch_id}
    for kind in ("readings", "medical_records", "triage_results", "audit_events"):
        counts: KindCounts = getattr(result, kind)
        params[f"{kind}_inserted"] = counts.inserted
        params[f"{kind}_duplicate"] = counts.duplicate
    params["medical_records_conflict"] = result.record_conflicts
    return params


def _months(readings: Sequence[Reading]) -> Iterable[datetime]:
    """One partition-key time per distinct (year, month, UTC offset): what the partitions need.

    The partition key is the hub's measuring time, or its receive time if the clock is unknown.
    `ensure_partitions` maps each to its UTC month; deduplicating here first spares it a
    conversion per reading (500 per batch), and the offset in the key keeps it exact.
    """
    seen: dict[tuple[int, int, object], datetime] = {}
    for r in readings:
        t = r.measured_at or r.received_at
        seen.setdefault((t.year, t.month, t.utcoffset()), t)
    return seen.values()


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _reading_row(r: Reading) -> tuple[object, ...]:
    return (
        r.id,
        r.measured_at,
        r.received_at,
        r.device_time,
        r.device_id,
        r.kind,
        # {name: {"value": v, "unit": u}}, serialised by pydantic-core: 6x faster than building
        # the dicts and json.dumps (500 per batch); values are finite (the wire refuses others).
        to_json(r.components).decode(),
        list(r.quality),
        r.patient_id,
        r.encounter_id,
        r.device_seq,
    )


def _record_row(r: MedicalRecord) -> tuple[object, ...]:
    return (
        r.id,
        r.revision,
        r.updated_at,
        r.patient_id,
        r.agent_id,
        r.type,
        _json(r.payload),
        r.content_hash,
        list(r.flags),
    )


def _triage_row(t: TriageResult) -> tuple[object, ...]:
    return (
        t.id,
        t.patient_id,
        list(t.reading_ids),
        t.computed_at,
        t.band.value,
        t.score,
        t.news2_score,
        _json(t.news2_subscores),
        t.complete,
        t.model_version,
        t.input_hash,
        t.window_s,
        t.at,
    )


def _audit_row(a: AuditEvent) -> tuple[object, ...]:
    return (a.id, a.at, a.actor, a.action, _json(a.detail))
