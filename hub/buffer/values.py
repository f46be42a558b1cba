"""Values the buffer takes and returns: frozen, free of SQL, safe to hand across threads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, NamedTuple
from uuid import UUID  # noqa: TC003 - dataclass field types, resolved at runtime

from wire.items import Reading

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
    max_unsent_bytes: int | None
    """The cap the daemon last opened the buffer with; None if unknown."""
    oldest_unsent_received_at: datetime | None
    file_bytes: int
    """Database file plus its write-ahead log, on disk."""
    devices: int
    open_encounters: int
    schema_version: int
    by_kind: Mapping[str, KindCount] = field(default_factory=dict)

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
