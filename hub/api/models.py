"""Request and response bodies of the phones' API beyond the hub and bulk-sync (issue 5 section 2).

Annotations are evaluated eagerly (no `from __future__ import annotations`): FastAPI and
pydantic read them at run time.
"""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

from wire.items import Ident, MedicalRecord, Reading, TriageResult
from wire.plans import Plan

DeviceAddress = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_upper=True, pattern=r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"
    ),
]
"""A BLE device address (`AA:BB:CC:DD:EE:FF`), as `tecsa-hub devices` lists it; stored uppercase."""


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None


UtcTime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A time with an offset, held in UTC (so the buffer's fixed-width text stays in order)."""

MAX_READINGS = 1000
DEFAULT_READINGS = 200
MAX_TRIAGE = 200
DEFAULT_TRIAGE = 20


class ApiError(BaseModel):
    """Every error body: a code to branch on and a message saying what to do."""

    error: str
    message: str


class NewEncounter(BaseModel):
    """Bind a device to a patient: its readings in [started_at, ended_at) get the patient."""

    model_config = ConfigDict(extra="forbid")

    device_address: DeviceAddress
    patient_id: Ident
    started_at: UtcTime | None = None
    """Default: the hub's clock now."""
    ended_at: UtcTime | None = None
    """Default: open until `DELETE /api/v1/encounters/{id}`."""


class EncounterOut(BaseModel):
    """An encounter as stored; open while `ended_at` is null."""

    id: UUID
    device_address: str
    patient_id: str
    started_at: datetime
    ended_at: datetime | None
    opened_by: str | None = None
    """The agent who bound the device; only they, or a supervisor, may end the encounter."""


class RecordVersionOut(BaseModel):
    """One stored version of a record; `conflict` flags versions kept for a person to review."""

    conflict: bool
    record: MedicalRecord


class RecordOut(BaseModel):
    """Every stored version of a record, latest revision first."""

    id: UUID
    versions: list[RecordVersionOut]


class PlansOut(BaseModel):
    """The plans cached on the hub; `version` is null before any snapshot arrived."""

    version: int | None
    plans: list[Plan]


class ReadingOut(BaseModel):
    """A reading and the triage results computed from it (empty when none, or not yet)."""

    reading: Reading
    triage: list[TriageResult]


class TriageOut(BaseModel):
    """A patient's latest triage results, newest first (`at`: the case's moment).

    Includes the results an agent's record caused, which may list no reading at all (so they
    never show under `GET /api/v1/readings`).
    """

    patient_id: str
    results: list[TriageResult]


class ReadingsOut(BaseModel):
    """A page of a patient's readings, oldest received first.

    `next` is null on the last page; otherwise pass it as `cursor` (with the same patient_id) to
    get the following page.
    """

    patient_id: str
    readings: list[ReadingOut]
    next: str | None
