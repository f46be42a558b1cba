"""Object keys of the archive, pure: the same batch always maps to the same key."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from wire.ids import uuid7_time_ms
from wire.topics import validate_hub_id

if TYPE_CHECKING:
    from uuid import UUID

RAW_PREFIX = "raw/"
QUARANTINE_PREFIX = "quarantine/"


def raw_key(hub_id: str, batch_id: UUID) -> str:
    """`raw/{hub_id}/{yyyy}/{mm}/{dd}/{batch_id}`, dated by the batch id's own UUIDv7 time.

    The date comes from the batch id, not the arrival time, so a batch redelivered days later
    maps to the same key and archiving stays idempotent.
    """
    day = datetime.fromtimestamp(uuid7_time_ms(batch_id) / 1000, tz=UTC)
    return f"{RAW_PREFIX}{validate_hub_id(hub_id)}/{day:%Y/%m/%d}/{batch_id}"


def quarantine_key(hub_id: str | None, data: bytes, received_at: datetime) -> str:
    """`quarantine/{yyyy}/{mm}/{dd}/{hub_id or _unknown}/{sha256}`: content-addressed."""
    hub = hub_id if hub_id is not None else "_unknown"
    digest = hashlib.sha256(data).hexdigest()
    return f"{QUARANTINE_PREFIX}{received_at.astimezone(UTC):%Y/%m/%d}/{hub}/{digest}"


def raw_prefix(hub_id: str | None = None) -> str:
    """Listing prefix for every raw batch, or one hub's."""
    return RAW_PREFIX if hub_id is None else f"{RAW_PREFIX}{validate_hub_id(hub_id)}/"
