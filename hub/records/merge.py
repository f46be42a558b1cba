"""Bulk-sync decisions, pure: what becomes of each record a phone sends (issue 5).

Per record, independently (one bad record never fails the others):

- **rejected**: it does not validate, or its `content_hash` is not the RFC 8785 hash of its
  payload (the phone and the hub would disagree about what was stored), with the reason;
- **duplicate**: the same id and revision with the same hash is stored already (a retry);
- **conflict**: the same or an older revision with different content: both are kept and flagged
  for review, and the stored version is returned to the phone;
- **accepted**: a new record, or a newer revision of a stored one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from wire.canonical import NotCanonicalizable, canonical
from wire.items import MedicalRecord


class Outcome(StrEnum):
    """The answer for one record."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """What the hub holds of a record id: one revision and its hash."""

    revision: int
    content_hash: str


MAX_PAYLOAD_BYTES = 256 * 1024
"""A record's payload, as canonical JSON, may be at most this big: every record must fit in one
uplink batch (`uplink.batch_max_bytes`, 256 KiB by default, and the envelope's hard limit)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome, the parsed record (None when rejected) and the reason when rejected."""

    outcome: Outcome
    record: MedicalRecord | None = None
    reason: str | None = None


def check(raw: Any) -> MedicalRecord | Decision:  # noqa: ANN401 - a record as the phone sent it
    """Parse and verify one record; a `Decision` (rejected, with the reason) if it is not valid."""
    try:
        record = MedicalRecord.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "record"
        return Decision(Outcome.REJECTED, reason=f"{where}: {err['msg']}")
    try:
        encoded = canonical(record.payload)
    except NotCanonicalizable as exc:
        return Decision(Outcome.REJECTED, reason=f"payload: {exc}")
    if len(encoded) > MAX_PAYLOAD_BYTES:
        return Decision(
            Outcome.REJECTED,
            reason=f"payload is {len(encoded)} bytes (canonical JSON); the most a record may carry "
            f"is {MAX_PAYLOAD_BYTES}: keep attachments out of records",
        )
    expected = "sha256:" + hashlib.sha256(encoded).hexdigest()
    if record.content_hash != expected:
        return Decision(
            Outcome.REJECTED,
            reason="content_hash is not the RFC 8785 SHA-256 of the payload "
            "(see docs/wire.md: MedicalRecord)",
        )
    return record


def decide(
    record: MedicalRecord, *, same_revision: StoredVersion | None, latest: StoredVersion | None
) -> Decision:
    """The outcome for a valid record, given what is stored under its id."""
    if same_revision is not None:
        same = same_revision.content_hash == record.content_hash
        return Decision(Outcome.DUPLICATE if same else Outcome.CONFLICT, record)
    if latest is not None and record.revision < latest.revision:
        return Decision(Outcome.CONFLICT, record)
    return Decision(Outcome.ACCEPTED, record)
