"""Read-side SQL: functions over a connection, used by the daemon's readers and the CLI alike."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from hub.buffer.values import (
    BondState,
    Device,
    Encounter,
    ItemKind,
    KindCount,
    OutboxBatch,
    OutboxState,
    PatientMatch,
    PendingReading,
    Stats,
    UnsentItem,
    UnsentRow,
    UplinkState,
    UplinkStatus,
    from_db_time,
    to_db_time,
)
from wire.items import MedicalRecord

if TYPE_CHECKING:
    import sqlite3
    from datetime import datetime
    from pathlib import Path

META_MAX_UNSENT_BYTES = "max_unsent_bytes"
META_OUTBOX_NEXT_SEQ = "outbox_next_seq"
"""The next envelope sequence number; only ever grows, so a seq is never reused."""
META_LAST_ACK = "uplink_last_ack"
"""JSON {"at", "status", "batch_id"} of the last verified ack the uplink recorded."""
META_UPLINK_STATE = "uplink_state"
"""JSON of the running uplink's `UplinkState` (breaker, connection, last error)."""

_OUTBOX_COLUMNS = (
    "batch_id, seq, priority, created_at, sealed, readings, state, attempts, last_sent_at,"
    " acked_at, ack_status, ack_reason"
)

_DEVICE_COLUMNS = (
    "address, profile, name, bond_state, last_racp_seq, clock_offset_s, battery_pct,"
    " first_seen, last_seen"
)


def _unsent(
    conn: sqlite3.Connection, columns: str, after: tuple[int, int] | None, limit: int
) -> list[tuple[Any, ...]]:
    """Up to `limit` rows neither delivered nor in a batch, in (priority, seq) order after `after`.

    Two index seeks, the rest of this priority then the next ones, each walking the
    `readings_pending` index in order (no sort): a row value comparison `(priority, seq) > (?, ?)`
    would seek on priority alone and rescan the skipped rows, and a UNION would copy every row
    (JSON included) through a sorter.
    """
    priority, seq = after if after is not None else (-1, -1)
    rows: list[tuple[Any, ...]] = conn.execute(
        f"SELECT {columns} FROM reading_rows INDEXED BY readings_pending"  # noqa: S608 - constant columns
        " WHERE batch_id IS NULL AND delivered_at IS NULL AND priority = ? AND seq > ?"
        " ORDER BY seq LIMIT ?",
        (priority, seq, limit),
    ).fetchall()
    if len(rows) < limit:
        rows += conn.execute(
            f"SELECT {columns} FROM reading_rows INDEXED BY readings_pending"  # noqa: S608 - constant columns
            " WHERE batch_id IS NULL AND delivered_at IS NULL AND priority > ?"
            " ORDER BY priority, seq LIMIT ?",
            (priority, limit - len(rows)),
        ).fetchall()
    return rows


def unsent_page(
    conn: sqlite3.Connection, *, after: tuple[int, int] | None, limit: int
) -> list[PendingReading]:
    """Up to `limit` readings neither delivered nor in a batch, in send order, after `after`.

    `after` is the (priority, seq) of the last row of the previous page (keyset pagination), so
    no read transaction stays open between pages and memory does not grow with the backlog.
    """
    rows = _unsent(conn, "seq, id, priority, json", after, limit)
    return [PendingReading(seq=r[0], id=UUID(r[1]), priority=r[2], json=r[3]) for r in rows]


def unsent_rows(
    conn: sqlite3.Connection, *, after: tuple[int, int] | None, limit: int
) -> list[UnsentRow]:
    """`unsent_page` for the uplink: (seq, priority, json, nbytes) tuples, no id parsed."""
    return list(map(UnsentRow._make, _unsent(conn, "seq, priority, json, nbytes", after, limit)))


def batch_rows(conn: sqlite3.Connection, batch_id: UUID) -> list[PendingReading]:
    """The undelivered readings of `batch_id`, in send order (to resend after a restart)."""
    rows = conn.execute(
        "SELECT r.seq, r.id, r.priority, r.json FROM batches AS b"
        " JOIN reading_rows AS r ON r.seq BETWEEN b.lo AND b.hi AND r.batch_id = b.batch_id"
        " WHERE b.batch_id = ? AND b.delivered_at IS NULL AND r.delivered_at IS NULL"
        " ORDER BY r.priority, r.seq",
        (str(batch_id),),
    ).fetchall()
    return [PendingReading(seq=r[0], id=UUID(r[1]), priority=r[2], json=r[3]) for r in rows]


_WAITING = (
    "SELECT kind, count(*), coalesce(sum(nbytes), 0), min(received_at)"
    " FROM reading_rows INDEXED BY readings_pending"
    " WHERE batch_id IS NULL AND delivered_at IS NULL GROUP BY kind"
)
"""Rows in no batch, per kind: one scan of the covering pending index."""
_BATCHED = (
    "SELECT r.kind, count(*), coalesce(sum(r.nbytes), 0), min(r.received_at)"
    " FROM batches AS b INDEXED BY batches_waiting"
    " JOIN reading_rows AS r ON r.seq BETWEEN b.lo AND b.hi AND r.batch_id = b.batch_id"
    " WHERE b.delivered_at IS NULL AND r.delivered_at IS NULL GROUP BY r.kind"
)
"""Rows in batches the cloud has not acknowledged (in flight or rejected), per kind."""


def unsent_bytes(conn: sqlite3.Connection) -> int:
    """JSON bytes of the readings, records and triage results the cloud has not acknowledged.

    Items in an unacknowledged batch count by the batch's `nbytes` (all its items).
    """
    (waiting,) = conn.execute(
        "SELECT coalesce(sum(nbytes), 0) FROM reading_rows INDEXED BY readings_pending"
        " WHERE batch_id IS NULL AND delivered_at IS NULL"
    ).fetchone()
    (batched,) = conn.execute(
        "SELECT coalesce(sum(nbytes), 0) FROM batches WHERE delivered_at IS NULL"
    ).fetchone()
    return int(waiting) + int(batched) + waiting_extra_bytes(conn)


def _unsent_by_kind(
    conn: sqlite3.Connection,
) -> tuple[dict[str, tuple[int, int, str | None]], int, int]:
    """{kind: (unsent, unsent bytes, oldest received_at)}, rows in no batch, rows in batches."""
    out: dict[str, tuple[int, int, str | None]] = {}
    counts = [0, 0]
    for i, sql in enumerate((_WAITING, _BATCHED)):
        for kind, n, nbytes, first in conn.execute(sql):
            had_n, had_bytes, had_first = out.get(kind, (0, 0, None))
            oldest = (
                first
                if had_first is None or (first is not None and first < had_first)
                else had_first
            )
            out[kind] = (had_n + n, had_bytes + nbytes, oldest)
            counts[i] += n
    return out, counts[0], counts[1]


def stats(conn: sqlite3.Connection, path: Path) -> Stats:
    """Counts, backlog and size of the buffer at `path` (scans the unsent rows' index only)."""
    by_kind: dict[str, KindCount] = {}
    total = unsent = backlog = 0
    oldest: str | None = None
    conn.execute("BEGIN")  # one snapshot for the counters and the scans
    try:
        unsent_kinds, _waiting, in_flight = _unsent_by_kind(conn)
        delivered = dict(conn.execute("SELECT kind, n FROM delivered_kinds WHERE n > 0"))
        cap = conn.execute(
            "SELECT value FROM meta WHERE key = ?", (META_MAX_UNSENT_BYTES,)
        ).fetchone()
        devices = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        open_encounters = conn.execute(
            "SELECT count(*) FROM encounters WHERE ended_at IS NULL"
        ).fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        extras = extra_counts(conn)
        totals = {
            kind: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - constant names
            for kind, table, _ in _EXTRA_TABLES
        }
    finally:
        conn.execute("COMMIT")
    for kind in sorted(delivered.keys() | unsent_kinds.keys()):
        n_unsent, n_bytes, first = unsent_kinds.get(kind, (0, 0, None))
        n = n_unsent + delivered.get(kind, 0)
        by_kind[kind] = KindCount(total=n, unsent=n_unsent)
        total += n
        unsent += n_unsent
        backlog += n_bytes
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    records, triage = extras[ItemKind.MEDICAL_RECORD], extras[ItemKind.TRIAGE_RESULT]
    backlog += records.unsent_bytes + triage.unsent_bytes
    return Stats(
        total=total,
        unsent=unsent,
        in_flight=in_flight,
        delivered=total - unsent,
        unsent_bytes=backlog,
        max_unsent_bytes=int(cap[0]) if cap is not None else None,
        oldest_unsent_received_at=from_db_time(oldest) if oldest is not None else None,
        file_bytes=file_bytes(path),
        devices=devices,
        open_encounters=open_encounters,
        schema_version=version,
        by_kind=by_kind,
        records=KindCount(total=totals[ItemKind.MEDICAL_RECORD], unsent=records.unsent),
        triage=KindCount(total=totals[ItemKind.TRIAGE_RESULT], unsent=triage.unsent),
    )


def file_bytes(path: Path) -> int:
    """Bytes on disk of the database file and its write-ahead log."""
    total = 0
    for suffix in ("", "-wal"):
        part = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            total += part.stat().st_size
    return total


def devices(conn: sqlite3.Connection) -> list[Device]:
    """Every registered device, most recently seen first."""
    rows = conn.execute(
        f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY last_seen DESC, address"  # noqa: S608 - constant column list
    ).fetchall()
    return [_device(r) for r in rows]


def device(conn: sqlite3.Connection, address: str) -> Device | None:
    """The device registered under `address`, if any."""
    row = conn.execute(
        f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE address = ?",  # noqa: S608 - constant column list
        (address,),
    ).fetchone()
    return _device(row) if row is not None else None


def encounter(conn: sqlite3.Connection, encounter_id: UUID) -> Encounter | None:
    """The encounter with this id, if any."""
    row = conn.execute(
        "SELECT id, device_address, patient_id, started_at, ended_at, opened_by FROM encounters"
        " WHERE id = ?",
        (str(encounter_id),),
    ).fetchone()
    return _encounter(row) if row is not None else None


def overlapping_encounter(
    conn: sqlite3.Connection,
    device_address: str,
    started_at: str,
    ended_at: str | None,
    *,
    exclude: str | None = None,
) -> Encounter | None:
    """An encounter of the device overlapping [started_at, ended_at), other than `exclude`."""
    row = conn.execute(
        "SELECT id, device_address, patient_id, started_at, ended_at, opened_by FROM encounters"
        " WHERE device_address = ? AND id IS NOT ?"
        " AND (? IS NULL OR started_at < ?) AND (ended_at IS NULL OR ended_at > ?)"
        " ORDER BY started_at LIMIT 1",
        (device_address, exclude, ended_at, ended_at, started_at),
    ).fetchone()
    return _encounter(row) if row is not None else None


def patient_for(conn: sqlite3.Connection, device_address: str, at: datetime) -> PatientMatch | None:
    """The patient whose encounter with the device covers `at`, if one does."""
    stamp = to_db_time(at)
    row = conn.execute(
        "SELECT patient_id, id FROM encounters"
        " WHERE device_address = ? AND started_at <= ? AND (ended_at IS NULL OR ended_at > ?)"
        " ORDER BY started_at DESC LIMIT 1",
        (device_address, stamp, stamp),
    ).fetchone()
    return PatientMatch(row[0], UUID(row[1])) if row is not None else None


def _device(row: tuple[Any, ...]) -> Device:
    address, profile, name, bond, racp, offset, battery, first, last = row
    return Device(
        address=address,
        profile=profile,
        name=name,
        bond_state=BondState(bond),
        last_racp_seq=racp,
        clock_offset_s=offset,
        battery_pct=battery,
        first_seen=from_db_time(first),
        last_seen=from_db_time(last),
    )


def _encounter(row: tuple[Any, ...]) -> Encounter:
    enc_id, address, patient, started, ended, opened_by = row
    return Encounter(
        id=UUID(enc_id),
        device_address=address,
        patient_id=patient,
        started_at=from_db_time(started),
        ended_at=None if ended is None else from_db_time(ended),
        opened_by=opened_by,
    )


def outbox_in_flight(conn: sqlite3.Connection, *, after_seq: int, limit: int) -> list[OutboxBatch]:
    """Up to `limit` in-flight batches with seq above `after_seq`, oldest first (keyset paging)."""
    rows = conn.execute(
        f"SELECT {_OUTBOX_COLUMNS} FROM outbox INDEXED BY outbox_in_flight"  # noqa: S608 - constant column list
        " WHERE state = 'in_flight' AND seq > ? ORDER BY seq LIMIT ?",
        (after_seq, limit),
    ).fetchall()
    return [_outbox(r) for r in rows]


def outbox_batch(conn: sqlite3.Connection, batch_id: UUID) -> OutboxBatch | None:
    """The outbox row of `batch_id`, if any."""
    row = conn.execute(
        f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE batch_id = ?",  # noqa: S608 - constant column list
        (str(batch_id),),
    ).fetchone()
    return _outbox(row) if row is not None else None


def next_outbox_seq(conn: sqlite3.Connection) -> int:
    """The sequence number the next recorded batch gets."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_OUTBOX_NEXT_SEQ,)).fetchone()
    return int(row[0]) if row is not None else 0


def uplink_state(conn: sqlite3.Connection) -> UplinkState | None:
    """The state the running uplink last recorded, if any uplink ever ran on this file."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_UPLINK_STATE,)).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    error_at = data.get("last_error_at")
    return UplinkState(
        breaker=str(data["breaker"]),
        connected=bool(data["connected"]),
        updated_at=from_db_time(data["updated_at"]),
        last_error=data.get("last_error"),
        last_error_at=from_db_time(error_at) if error_at else None,
    )


def uplink_status(conn: sqlite3.Connection) -> UplinkStatus:
    """Backlog, outbox and the uplink's last recorded state (a scan of a covering index)."""
    conn.execute("BEGIN")  # one snapshot for the scans and the outbox counts
    try:
        kinds, waiting, batched = _unsent_by_kind(conn)
        by_state = {
            state: (n, items)
            for state, n, items in conn.execute(
                "SELECT state, count(*), coalesce(sum(readings), 0) FROM outbox GROUP BY state"
            )
        }
        extras = extra_counts(conn)
    finally:
        conn.execute("COMMIT")
    records, triage = extras[ItemKind.MEDICAL_RECORD], extras[ItemKind.TRIAGE_RESULT]
    waiting += records.waiting + triage.waiting
    unsent = waiting + batched + records.batched + triage.batched
    firsts = [first for _n, _b, first in kinds.values() if first is not None]
    oldest = min(firsts) if firsts else None
    last = conn.execute("SELECT value FROM meta WHERE key = ?", (META_LAST_ACK,)).fetchone()
    last_ack = json.loads(last[0]) if last is not None else {}
    in_flight = by_state.get(OutboxState.IN_FLIGHT.value, (0, 0))
    rejected = by_state.get(OutboxState.REJECTED.value, (0, 0))
    return UplinkStatus(
        unsent=unsent,
        waiting=waiting,
        oldest_unsent_received_at=from_db_time(oldest) if oldest is not None else None,
        in_flight_batches=in_flight[0],
        in_flight_readings=in_flight[1],
        rejected_batches=rejected[0],
        rejected_readings=rejected[1],
        acked_batches=by_state.get(OutboxState.ACKED.value, (0, 0))[0],
        next_seq=next_outbox_seq(conn),
        last_ack_at=from_db_time(last_ack["at"]) if "at" in last_ack else None,
        last_ack_status=last_ack.get("status"),
        last_ack_batch_id=last_ack.get("batch_id"),
        state=uplink_state(conn),
        unsent_records=records.unsent,
        unsent_triage=triage.unsent,
    )


def _outbox(row: tuple[Any, ...]) -> OutboxBatch:
    batch_id, seq, priority, created, sealed, n, state, attempts, sent, acked, status, reason = row
    return OutboxBatch(
        batch_id=UUID(batch_id),
        seq=seq,
        priority=priority,
        created_at=from_db_time(created),
        sealed=bytes(sealed) if sealed is not None else None,
        readings=n,
        state=OutboxState(state),
        attempts=attempts,
        last_sent_at=from_db_time(sent) if sent is not None else None,
        acked_at=from_db_time(acked) if acked is not None else None,
        ack_status=status,
        ack_reason=reason,
    )


def record_versions(conn: sqlite3.Connection, record_id: str) -> list[str]:
    """The wire JSON of every stored version of a record, newest revision first."""
    rows = conn.execute(
        "SELECT json FROM records WHERE id = ? ORDER BY revision DESC, received_at DESC",
        (record_id,),
    ).fetchall()
    return [row[0] for row in rows]


# --- medical records and triage results as uplink items (schema version 5) ----------------------

RECORD_PRIORITY = 1
"""Records are routine: after alerts (readings and high-band triage), before bulk data."""
CONFLICT_FLAG = "conflict"

_EXTRA_TABLES: tuple[tuple[ItemKind, str, str], ...] = (
    (ItemKind.MEDICAL_RECORD, "records", "records_pending"),
    (ItemKind.TRIAGE_RESULT, "triage", "triage_pending"),
)


@dataclass(frozen=True, slots=True)
class ExtraCounts:
    """Unsent records or triage results: in no batch yet, and in unacknowledged batches."""

    waiting: int = 0
    waiting_bytes: int = 0
    batched: int = 0
    batched_bytes: int = 0

    @property
    def unsent(self) -> int:
        """Not acknowledged by the cloud."""
        return self.waiting + self.batched

    @property
    def unsent_bytes(self) -> int:
        """Their JSON bytes."""
        return self.waiting_bytes + self.batched_bytes


def extra_counts(conn: sqlite3.Connection) -> dict[ItemKind, ExtraCounts]:
    """Unsent records and triage results, from their pending indexes and the waiting batches."""
    out: dict[ItemKind, ExtraCounts] = {}
    for kind, table, pending in _EXTRA_TABLES:
        waiting, waiting_bytes = conn.execute(
            f"SELECT count(*), coalesce(sum(nbytes), 0) FROM {table} INDEXED BY {pending}"  # noqa: S608 - constant names
            " WHERE batch_id IS NULL"
        ).fetchone()
        batched, batched_bytes = conn.execute(
            f"SELECT count(*), coalesce(sum(t.nbytes), 0) FROM batches AS b"  # noqa: S608 - constant names
            f" INDEXED BY batches_waiting JOIN {table} AS t ON t.batch_id = b.batch_id"
            " WHERE b.delivered_at IS NULL"
        ).fetchone()
        out[kind] = ExtraCounts(int(waiting), int(waiting_bytes), int(batched), int(batched_bytes))
    return out


def waiting_extra_bytes(conn: sqlite3.Connection) -> int:
    """JSON bytes of the records and triage results in no batch yet."""
    return sum(c.waiting_bytes for c in extra_counts(conn).values())


def unsent_items(conn: sqlite3.Connection, *, limit: int) -> list[UnsentItem]:
    """Up to `limit` records and triage results in no batch, in send order (priority first).

    Alert triage results (the high band) come first, then records (routine), then the other
    triage results of each later priority, oldest first within each.
    """
    triage = [
        UnsentItem(ItemKind.TRIAGE_RESULT, (tid,), priority, body, nbytes)
        for tid, priority, body, nbytes in conn.execute(
            "SELECT id, priority, json, nbytes FROM triage INDEXED BY triage_pending"
            " WHERE batch_id IS NULL ORDER BY priority, computed_at LIMIT ?",
            (limit,),
        )
    ]
    records: list[UnsentItem] = []
    for rid, revision, chash, conflict, body, nbytes in conn.execute(
        "SELECT id, revision, content_hash, conflict, json, nbytes FROM records"
        " INDEXED BY records_pending WHERE batch_id IS NULL ORDER BY received_at, id LIMIT ?",
        (limit,),
    ):
        sent, size = body, nbytes
        if conflict:
            sent = _flag_conflict(body)
            size = len(sent.encode())
        key = (rid, str(revision), chash)
        records.append(UnsentItem(ItemKind.MEDICAL_RECORD, key, RECORD_PRIORITY, sent, size))
    # Stable merge by priority: triage of a priority before records of a later one.
    merged = sorted(
        triage + records,
        key=lambda i: (i.priority, i.kind is ItemKind.TRIAGE_RESULT and i.priority > 0),
    )
    return merged[:limit]


def _flag_conflict(body: str) -> str:
    """The record's wire JSON with the `conflict` flag set (the hub kept two versions)."""
    record = MedicalRecord.model_validate_json(body)
    if CONFLICT_FLAG in record.flags:
        return body
    return record.model_copy(update={"flags": (*record.flags, CONFLICT_FLAG)}).model_dump_json()


def latest_record(conn: sqlite3.Connection, record_id: str) -> list[str]:
    """The wire JSON of every stored version of the record's highest revision (conflicts too)."""
    rows = conn.execute(
        "SELECT json FROM records WHERE id = ?"
        " AND revision = (SELECT max(revision) FROM records WHERE id = ?)"
        " ORDER BY received_at, content_hash",
        (record_id, record_id),
    ).fetchall()
    return [row[0] for row in rows]


def triage_for_readings(conn: sqlite3.Connection, reading_ids: list[str]) -> list[tuple[str, str]]:
    """(reading id, triage JSON) for every triage result that scored one of `reading_ids`."""
    rows = conn.execute(
        "SELECT x.reading_id, t.json FROM triage_readings AS x"
        " JOIN triage AS t ON t.id = x.triage_id"
        " WHERE x.reading_id IN (SELECT value FROM json_each(?))"
        " ORDER BY x.reading_id, t.computed_at DESC",
        (json.dumps(reading_ids),),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


BAND_ORDER = ("low", "low_medium", "medium", "high")


def recent_triage(
    conn: sqlite3.Connection, *, limit: int, min_band: str | None, patient_id: str | None
) -> list[str]:
    """Triage JSON, newest first, at or above `min_band`, of one patient if given."""
    bands = list(BAND_ORDER[BAND_ORDER.index(min_band) :]) if min_band else list(BAND_ORDER)
    if patient_id is not None:
        rows = conn.execute(
            "SELECT json FROM triage INDEXED BY triage_patient WHERE patient_id = ?"
            " AND band IN (SELECT value FROM json_each(?)) ORDER BY computed_at DESC LIMIT ?",
            (patient_id, json.dumps(bands), limit),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT json FROM triage INDEXED BY triage_recent"
            " WHERE band IN (SELECT value FROM json_each(?)) ORDER BY computed_at DESC LIMIT ?",
            (json.dumps(bands), limit),
        ).fetchall()
    return [row[0] for row in rows]


def readings_for_patient(
    conn: sqlite3.Connection, patient_id: str, *, since: datetime | None, limit: int
) -> list[str]:
    """The patient's reading JSON received after `since` (all if None), oldest first.

    Walks the patient's rows in the `readings_patient` index and sorts them by `received_at`:
    cost grows with the patient's readings on the hub (thousands at most within retention).
    """
    rows = conn.execute(
        "SELECT json FROM reading_rows INDEXED BY readings_patient"
        " WHERE patient_id = ? AND received_at > ? ORDER BY received_at, seq LIMIT ?",
        (patient_id, to_db_time(since) if since is not None else "", limit),
    ).fetchall()
    return [row[0] for row in rows]
