"""From a parsed measurement to a stored reading, pure: ids, times, patient and idempotency key.

Rules others rely on:
- Only a measurement with `patient_reading` becomes a reading (test/demo data, control solution,
  unsuccessful or value-less measurements never do).
- `measured_at` = the device's wall-clock time read in the devices' time zone, minus the device's
  measured clock offset (device minus hub). Unknown device time → None; the cloud then dates the
  reading by `received_at`.
- The dedupe key is stable across re-deliveries of the same stored record: device + characteristic
  + the device's sequence number when it has one, else its own timestamp and a hash of the bytes.
  A live value without either is unique per receipt (nothing to deduplicate against).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from wire.ids import uuid7
from wire.items import Component, Reading

if TYPE_CHECKING:
    from uuid import UUID

    from hub.ble.parsers import Measurement

MAX_COMPONENTS = 16  # wire.items.MAX_COMPONENTS
_DROPPED_PREFIXES = ("rr_interval_",)  # beat-to-beat detail: not a vital sign the cloud stores


@dataclass(frozen=True, slots=True)
class Converted:
    """A reading ready for the buffer, with the key that makes storing it idempotent."""

    reading: Reading
    dedupe_key: str


def device_sequence(measurement: Measurement) -> int | None:
    """The device's record sequence number (glucose records), when the measurement has one."""
    seq = measurement.extra.get("sequence")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def measured_at(
    device_time: datetime | None, *, clock_offset_s: float | None, device_tz: tzinfo
) -> datetime | None:
    """The hub's estimate of the measuring time, in UTC; None if the device did not say."""
    if device_time is None:
        return None
    local = device_time.replace(tzinfo=device_tz)
    return local.astimezone(UTC) - timedelta(seconds=clock_offset_s or 0.0)


def dedupe_key(measurement: Measurement, *, address: str, raw: bytes, received_at: datetime) -> str:
    """Stable across re-deliveries of the same record; see the module rules."""
    base = f"{address.upper()}|{measurement.characteristic}"
    seq = device_sequence(measurement)
    if seq is not None:
        return f"{base}|seq:{seq}"
    digest = hashlib.sha256(raw).hexdigest()[:16]
    if measurement.device_time is not None:
        return f"{base}|t:{measurement.device_time.isoformat()}|h:{digest}"
    return f"{base}|r:{received_at.astimezone(UTC).isoformat()}|h:{digest}"


def to_reading(
    measurement: Measurement,
    *,
    address: str,
    raw: bytes,
    received_at: datetime,
    clock_offset_s: float | None,
    device_tz: tzinfo,
    patient: tuple[str, UUID] | None,
    rand: bytes,
) -> Converted | None:
    """The reading for `measurement`, or None when it must not become a patient reading.

    `patient` is (patient id, encounter id) from the encounter that binds the device at the
    measuring time; `rand` is 10 random bytes for the reading's UUIDv7.
    """
    if not measurement.patient_reading:
        return None
    components = {
        name: Component(value=q.value, unit=q.unit)
        for name, q in measurement.values.items()
        if not name.startswith(_DROPPED_PREFIXES)
    }
    if not components:
        return None
    if len(components) > MAX_COMPONENTS:
        components = dict(list(components.items())[:MAX_COMPONENTS])
    reading = Reading(
        id=uuid7(received_at, rand),
        device_id=address.upper(),
        kind=measurement.kind,
        components=components,
        device_time=measurement.device_time,
        measured_at=measured_at(
            measurement.device_time, clock_offset_s=clock_offset_s, device_tz=device_tz
        ),
        received_at=received_at,
        quality=measurement.flags,
        patient_id=patient[0] if patient else None,
        encounter_id=patient[1] if patient else None,
        device_seq=device_sequence(measurement),
    )
    return Converted(
        reading, dedupe_key(measurement, address=address, raw=raw, received_at=received_at)
    )
