"""Values the buffer takes and returns: frozen, free of SQL, safe to hand across threads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, NamedTuple
from uuid import UUID  # noqa: TC003 - dataclass field types, resolved at runtime

from hub.records.merge import Outcome  # noqa: TC001 - dataclass field type
from wire.items import MedicalRecord, Reading

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_DEDUPE_KEY = 512
"""Longest dedupe key accepted: a device id, a characteristic, a sequence and a hash fit easily."""


class Priority(IntEnum):
    """The uplink sends lower values first. Alerts (0) may also use the capacity reserve."""

    ALERT = 0
    ROUTINE = 1
    BULK = 2


class InsertResult(StrEnum):
    """What happened to one reading handed to the buffer."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    """A reading with the same dedupe key or the same id is stored already; nothing changed."""


class BondState(StrEnum):
    """Whether the hub holds a BLE bond (pairing keys) with a device."""

    UNKNOWN = "unknown"
    NONE = "none"
    BONDED = "bonded"


@dataclass(frozen=True, slots=True)
class NewReading:
    """A reading to store, with the key that makes storing it idempotent."""

    reading: Reading
    dedupe_key: str
    """Stable across re-deliveries of the same measurement, e.g. device + characteristic + sequence
    (or device time) + a hash of the raw bytes. A second insert with this key stores nothing."""
    priority: int = Priority.ROUTINE


class UnsentRow(NamedTuple):
    """An unsent reading as the uplink batches it: no id parsed, just what a batch needs.

    `nbytes` is the length of `json` in UTF-8 bytes (stored with the row), so batching never
    encodes the text again.
    """

    seq: int
    priority: int
    json: str
    nbytes: int


class ItemKind(StrEnum):
    """The kinds of item the uplink carries besides readings (their `Body` field names)."""

    MEDICAL_RECORD = "medical_records"
    TRIAGE_RESULT = "triage_results"


class UnsentItem(NamedTuple):
    """An unsent medical record or triage result, as the uplink batches it.

    `key` names the stored row: `(id,)` for a triage result, `(id, revision, content_hash)` for a
    record version. `json` is the wire JSON to send (a record kept as a conflict carries the
    `conflict` flag); `nbytes` its UTF-8 length.
    """

    kind: ItemKind
    key: tuple[str, ...]
    priority: int
    json: str
    nbytes: int


@dataclass(frozen=True, slots=True)
class PendingReading:
    """An unsent reading as the uplink reads it: its order, id and wire JSON."""

    seq: int
    id: UUID
    priority: int
    json: str

    def reading(self) -> Reading:
        """The stored reading, parsed back from its wire JSON."""
        return Reading.model_validate_json(self.json)


@dataclass(frozen=True, slots=True)
class Device:
    """A BLE device the hub has seen."""

    address: str
    profile: str
    name: str | None
    bond_state: BondState
    last_racp_seq: int | None
    clock_offset_s: float | None
    """Device clock minus hub clock, in seconds; None until measured."""
    battery_pct: int | None
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class Encounter:
    """A device bound to a patient for [started_at, ended_at); open while `ended_at` is None."""

    id: UUID
    device_address: str
    patient_id: str
    started_at: datetime
    ended_at: datetime | None
    opened_by: str | None = None
    """The agent who bound the device (None: before schema v8, or the hub itself)."""


class PatientMatch(NamedTuple):
    """The patient a reading belongs to, and the encounter that says so."""

    patient_id: str
    encounter_id: UUID


@dataclass(frozen=True, slots=True)
class KindCount:
    """Counts of one kind of reading."""

    total: int
    unsent: int


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of what the buffer holds."""

    total: int
    unsent: int
    """Not yet acknowledged by the cloud (including in flight)."""
    in_flight: int
    """Assigned to a batch that the cloud has not acknowledged yet."""
    delivered: int
    unsent_bytes: int
    """JSON bytes of everything unsent: readings, records and triage results."""
    max_unsent_bytes: int | None
    """The cap the daemon last opened the buffer with; None if unknown."""
    oldest_unsent_received_at: datetime | None
    file_bytes: int
    """Database file plus its write-ahead log, on disk."""
    devices: int
    open_encounters: int
    schema_version: int
    by_kind: Mapping[str, KindCount] = field(default_factory=dict)
    """Readings per kind (`total`, `unsent` and `delivered` count readings only)."""
    records: KindCount = KindCount(total=0, unsent=0)
    """Medical record versions (conflicts included); unsent = not acknowledged by the cloud."""
    triage: KindCount = KindCount(total=0, unsent=0)
    """Triage results; unsent = not acknowledged by the cloud."""

    @property
    def at_capacity(self) -> bool:
        """True when new non-alert readings are refused with `BufferFull`."""
        return self.max_unsent_bytes is not None and self.unsent_bytes >= self.max_unsent_bytes


def to_db_time(value: datetime) -> str:
    """Fixed-width UTC text (`2026-05-01T09:30:00.000000+00:00`): text order is time order."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"the buffer stores aware datetimes only, got {value.isoformat()}")
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def from_db_time(text: str) -> datetime:
    """The aware UTC datetime written by `to_db_time`."""
    return datetime.fromisoformat(text)


class OutboxState(StrEnum):
    """Where a batch in the uplink's outbox stands."""

    IN_FLIGHT = "in_flight"
    """Sealed and recorded; published (or about to be) and waiting for the cloud's ack."""
    ACKED = "acked"
    """The cloud stored it (`stored` or `duplicate`): its readings are delivered."""
    REJECTED = "rejected"
    """The cloud quarantined it: never resent; its readings stay, flagged, for review."""


@dataclass(frozen=True, slots=True)
class OutboxBatch:
    """A sealed batch as recorded in the outbox."""

    batch_id: UUID
    seq: int
    """The per-hub monotonic sequence number in the envelope header."""
    priority: int
    created_at: datetime
    sealed: bytes | None
    """The exact bytes published, republished unchanged; None once acked (dropped to save room)."""
    readings: int
    state: OutboxState
    attempts: int
    last_sent_at: datetime | None
    acked_at: datetime | None
    ack_status: str | None
    ack_reason: str | None


class AckOutcome(StrEnum):
    """What recording a verified ack did."""

    DELIVERED = "delivered"
    """The batch was in flight; its readings are now delivered."""
    REJECTED = "rejected"
    """The batch was in flight; it is now rejected and will not be resent."""
    ALREADY_FINAL = "already_final"
    """The batch was acked or rejected before (a repeated ack); nothing changed."""
    UNKNOWN_BATCH = "unknown_batch"
    """No batch with this id is in the outbox; nothing changed."""
    SEQ_MISMATCH = "seq_mismatch"
    """The ack names our batch id with another sequence number; nothing changed."""


@dataclass(frozen=True, slots=True)
class AckResult:
    """The outcome of `Buffer.ack_batch` and how many readings it marked delivered."""

    outcome: AckOutcome
    delivered: int = 0


@dataclass(frozen=True, slots=True)
class UplinkState:
    """What the running uplink reports for read-only tools (persisted in `meta`)."""

    breaker: str
    """`closed`, `open` or `half_open`."""
    connected: bool
    updated_at: datetime
    last_error: str | None = None
    last_error_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UplinkStatus:
    """A snapshot of the uplink's side of the buffer, for `tecsa-hub uplink status` and metrics."""

    unsent: int
    """Items (readings, records, triage results) the cloud has not acknowledged (waiting, in
    flight or in rejected batches)."""
    waiting: int
    """Unsent items not yet in any batch."""
    oldest_unsent_received_at: datetime | None
    in_flight_batches: int
    in_flight_readings: int
    rejected_batches: int
    rejected_readings: int
    acked_batches: int
    next_seq: int
    last_ack_at: datetime | None
    last_ack_status: str | None
    last_ack_batch_id: str | None
    state: UplinkState | None
    """None until an uplink has run against this file."""
    unsent_records: int = 0
    """Of `unsent`, medical record versions."""
    unsent_triage: int = 0
    """Of `unsent`, triage results."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What became of one record of a bulk-sync; `stored` is the kept version on a conflict."""

    outcome: Outcome
    record: MedicalRecord
    stored: MedicalRecord | None = None
