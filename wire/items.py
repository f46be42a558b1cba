"""Item schemas carried in a batch body (schema version 1): readings, records, triage, audit.

Every model is frozen and forbids unknown fields, so a decoder accepts exactly what this version
defines. Sizes are bounded field by field; the envelope bounds the whole body before parsing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    NaiveDatetime,
    StringConstraints,
    model_validator,
)

SCHEMA_VERSION = 1
MAX_COMPONENTS = 16
MAX_FLAGS = 32

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
"""A lowercase identifier: kinds, component names, quality flags, actions."""

Ident = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
"""An opaque identifier from another system (patient, agent, device): printable ASCII, no spaces."""

Ucum = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[\x21-\x7e]+$")]
"""A UCUM unit code such as `mm[Hg]`, `Cel`, `/min`, `%`, `kg`, `mg/dL`."""

ContentHash = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Component(_Frozen):
    """One measured quantity; `value` is None when the device sent NaN, NRes or a non-value."""

    value: float | None
    unit: Ucum


class Reading(_Frozen):
    """One measurement from a device, with its components in UCUM units."""

    id: UUID
    device_id: Ident
    kind: Slug
    components: dict[Slug, Component] = Field(min_length=1, max_length=MAX_COMPONENTS)
    device_time: NaiveDatetime | None = None
    """The device's own wall-clock time, as sent (BLE carries no time zone); None when unknown."""
    measured_at: AwareDatetime | None = None
    """The hub's best estimate of the measuring time (device time corrected by the clock offset)."""
    received_at: AwareDatetime
    """When the hub received it."""
    quality: tuple[Slug, ...] = Field(default=(), max_length=MAX_FLAGS)
    patient_id: Ident | None = None
    encounter_id: UUID | None = None
    device_seq: int | None = Field(default=None, ge=0, le=0xFFFF_FFFF)
    """The device's record sequence number, when it has one (glucose meters, stored records)."""


class MedicalRecord(_Frozen):
    """One revision of a document an agent made on a phone."""

    id: UUID
    revision: int = Field(ge=1, le=1_000_000)
    updated_at: AwareDatetime
    patient_id: Ident
    agent_id: Ident
    type: Slug
    payload: dict[str, JsonValue]
    content_hash: ContentHash
    flags: tuple[Slug, ...] = Field(default=(), max_length=MAX_FLAGS)
    """For example `conflict` when the hub kept two versions for review."""


class RiskBand(StrEnum):
    """Clinical risk bands of NEWS2, which the learned model may raise but never lower."""

    LOW = "low"
    LOW_MEDIUM = "low_medium"
    MEDIUM = "medium"
    HIGH = "high"


class TriageResult(_Frozen):
    """The hub's triage of one patient's vitals at one moment."""

    id: UUID
    patient_id: Ident | None
    reading_ids: tuple[UUID, ...] = Field(max_length=64)
    computed_at: AwareDatetime
    band: RiskBand
    score: float
    news2_score: int | None = Field(ge=0, le=20)
    news2_subscores: dict[Slug, int] = Field(max_length=8)
    complete: bool
    model_version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    input_hash: ContentHash
    window_s: int | None = Field(default=None, ge=60, le=86_400, exclude_if=lambda v: v is None)
    """The triage window the hub used, in seconds: vitals measured this long before the case's
    moment counted. The cloud rebuilds the inputs with it; None (results made before the field
    existed, body version 1) means the default hour, and is left out of the JSON so that a
    version 1 result serialises as it always did."""
    at: AwareDatetime | None = Field(default=None, exclude_if=lambda v: v is None)
    """The case's moment: vitals measured in (at - window, at] and records updated up to `at`
    counted. The newest of the new readings' times, or, for a result an agent's record caused,
    the record's time (or the patient's newest reading, if later). None (body version 1): the
    newest of `reading_ids`' measured times."""


class AuditEvent(_Frozen):
    """Something a person or the hub did that must be traceable (pairing, export, config change)."""

    id: UUID
    at: AwareDatetime
    actor: Ident
    action: Slug
    detail: dict[str, JsonValue] = Field(default_factory=dict)


BODY_VERSION: Literal[2] = 2
"""The schema version hubs write. 2 added `TriageResult.window_s`; version 1 bodies (without
it) are still read."""


class Body(_Frozen):
    """The plaintext of a batch: its items, in schema version 2 (or 1)."""

    v: Literal[1, 2] = BODY_VERSION
    readings: tuple[Reading, ...] = ()
    medical_records: tuple[MedicalRecord, ...] = ()
    triage_results: tuple[TriageResult, ...] = ()
    audit_events: tuple[AuditEvent, ...] = ()

    @model_validator(mode="after")
    def _ids_unique(self) -> Body:
        for name, items in self._groups():
            if len({i.id for i in items}) != len(items) and name != "medical_records":
                raise ValueError(f"duplicate item id in {name}")
        revisions = {(r.id, r.revision) for r in self.medical_records}
        if len(revisions) != len(self.medical_records):
            raise ValueError("duplicate item id and revision in medical_records")
        if self.v == 1 and any(
            t.window_s is not None or t.at is not None for t in self.triage_results
        ):
            raise ValueError("triage_results[] window_s and at are schema version 2, not 1")
        return self

    def counts(self) -> dict[str, int]:
        """Number of items of each kind, as carried in the header."""
        return {name: len(items) for name, items in self._groups()}

    def total(self) -> int:
        """Number of items of all kinds."""
        return sum(len(items) for _, items in self._groups())

    def _groups(
        self,
    ) -> tuple[tuple[str, tuple[Reading | MedicalRecord | TriageResult | AuditEvent, ...]], ...]:
        return (
            ("readings", self.readings),
            ("medical_records", self.medical_records),
            ("triage_results", self.triage_results),
            ("audit_events", self.audit_events),
        )
