"""The frozen values a measurement parser returns: a Measurement of named UCUM Quantities."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from hub.ble.parsers._codec import Number, Special

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

ExtraValue = int | float | str | bool | None
"""What `Measurement.extra` may hold: JSON scalars only."""

NON_PATIENT_FLAGS = frozenset(
    {
        "control_solution",  # GLS: type 10 or sample location 4
        "demo_data",  # PLX measurement status bit 10
        "intermediate",  # 0x2A36 / 0x2A1E: a value shown while the device is still measuring
        "invalid_measurement",  # PLX measurement status bit 15
        "measurement_unavailable",  # PLX measurement status bit 13
        "measurement_unsuccessful",  # WSS: weight 0xFFFF
        "no_value",  # every component is NaN/NRes/INF/absent
        "test_data",  # PLX measurement status bit 11
    }
)
"""Quality flags that keep a measurement from ever becoming a patient reading."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """One measured component; `value` is None when the device sent a special value or none."""

    value: float | None
    unit: str
    """A UCUM code: ``mm[Hg]``, ``kPa``, ``Cel``, ``[degF]``, ``/min``, ``%``, ``kg``, ..."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One decoded health measurement, in the shape `wire.items.Reading` needs.

    The constructor normalises: `values` and `extra` become read-only mappings and `flags` a
    sorted tuple without duplicates, so two equal measurements compare equal.
    """

    characteristic: str
    """The 16-bit UUID, four lowercase hex digits (``"2a35"``)."""
    kind: str
    """``blood_pressure``, ``body_temperature``, ``heart_rate``, ``spo2_spot_check``, ..."""
    values: Mapping[str, Quantity]
    device_time: datetime | None
    """The device's wall clock (naive, no time zone); None when unknown or untrusted."""
    flags: tuple[str, ...]
    """Quality flags, snake_case, sorted."""
    patient_reading: bool
    """False when the data must never become a patient reading; `flags` says why."""
    extra: Mapping[str, ExtraValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        object.__setattr__(self, "flags", tuple(sorted(set(self.flags))))


def build_measurement(
    characteristic: str,
    kind: str,
    values: Mapping[str, Quantity],
    *,
    device_time: datetime | None,
    flags: Iterable[str],
    extra: Mapping[str, ExtraValue],
) -> Measurement:
    """Return a Measurement whose `patient_reading` follows from its flags and values."""
    all_flags = set(flags)
    if all(quantity.value is None for quantity in values.values()):
        all_flags.add("no_value")
    return Measurement(
        characteristic=characteristic,
        kind=kind,
        values=values,
        device_time=device_time,
        flags=tuple(all_flags),
        patient_reading=not all_flags & NON_PATIENT_FLAGS,
        extra=extra,
    )


def to_quantity(number: Number, unit: str, flags: set[str]) -> Quantity:
    """Return `number` as a Quantity; a special value becomes None and adds ``value_<special>``."""
    if isinstance(number, Special):
        flags.add(f"value_{number.value}")
        return Quantity(None, unit)
    return Quantity(number, unit)
