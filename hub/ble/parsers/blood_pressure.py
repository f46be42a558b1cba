"""Blood Pressure Service: Measurement 0x2A35, Intermediate Cuff Pressure 0x2A36, Feature 0x2A49."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from hub.ble.parsers._codec import (
    Reader,
    bit_names,
    check_input,
    check_length,
    check_reserved,
    decode_sfloat,
)
from hub.ble.parsers.date_time import DATE_TIME_LEN, read_date_time, timestamp
from hub.ble.parsers.quirks import BEURER_BM85
from hub.ble.parsers.values import Measurement, Quantity, build_measurement, to_quantity

if TYPE_CHECKING:
    from datetime import datetime

    from hub.ble.parsers.values import ExtraValue

BLOOD_PRESSURE_MEASUREMENT = "2a35"
INTERMEDIATE_CUFF_PRESSURE = "2a36"
BLOOD_PRESSURE_FEATURE = "2a49"

# GSS "Blood Pressure Measurement" flags.
_KPA = 0x01
_TIMESTAMP = 0x02
_PULSE = 0x04
_USER = 0x08
_STATUS = 0x10
_RESERVED = 0xE0
_MIN_LEN = 7  # flags + systolic + diastolic + MAP, three SFLOATs
_USER_UNKNOWN = 0xFF  # GSS "Blood Pressure Measurement": user id 0xFF = unknown user

# GSS "Blood Pressure Measurement", Measurement Status: bits 0-2 and 5 are named here, bits
# 3-4 are the pulse rate range, bits 6-15 are reserved.
_STATUS_BITS = {
    0: "body_movement",
    1: "cuff_too_loose",
    2: "irregular_pulse",
    5: "improper_position",
}
_PULSE_RANGE_SHIFT = 3
_PULSE_RANGE = {1: "pulse_rate_above_range", 2: "pulse_rate_below_range"}  # 0 in range, 3 RFU

# GSS "Blood Pressure Feature" bits; BPS 1.1 adds bits 6-8.
FEATURE_BITS = {
    0: "body_movement_detection",
    1: "cuff_fit_detection",
    2: "irregular_pulse_detection",
    3: "pulse_rate_range_detection",
    4: "measurement_position_detection",
    5: "multiple_bonds",
    6: "e2e_crc",
    7: "user_data_service",
    8: "user_facing_time",
}
_FEATURE_LEN = 2


@dataclass(frozen=True, slots=True)
class BloodPressureFeature:
    """What a blood pressure monitor says it can detect."""

    characteristic: ClassVar[str] = BLOOD_PRESSURE_FEATURE
    kind: ClassVar[str] = "blood_pressure_feature"

    supported: tuple[str, ...]


def parse_blood_pressure(data: bytes, *, quirks: frozenset[str] = frozenset()) -> Measurement:
    """Parse a Blood Pressure Measurement (0x2A35): systolic, diastolic, mean arterial, pulse."""
    return _parse(data, BLOOD_PRESSURE_MEASUREMENT, quirks)


def parse_intermediate_cuff_pressure(
    data: bytes, *, quirks: frozenset[str] = frozenset()
) -> Measurement:
    """Parse an Intermediate Cuff Pressure (0x2A36): the cuff pressure while measuring."""
    return _parse(data, INTERMEDIATE_CUFF_PRESSURE, quirks)


def parse_blood_pressure_feature(
    data: bytes,
    *,
    quirks: frozenset[str] = frozenset(),  # noqa: ARG001 - every parser takes quirks
) -> BloodPressureFeature:
    """Parse a Blood Pressure Feature (0x2A49) value: a uint16 of supported-feature bits."""
    data = check_input(data, BLOOD_PRESSURE_FEATURE)
    check_length(data, _FEATURE_LEN, BLOOD_PRESSURE_FEATURE)
    return BloodPressureFeature(bit_names(int.from_bytes(data, "little"), FEATURE_BITS))


def _parse(data: bytes, char: str, quirks: frozenset[str]) -> Measurement:
    data = check_input(data, char)
    beurer = BEURER_BM85 in quirks
    reader = Reader(data, char)
    flags = reader.u8("flags")
    if not beurer:
        check_reserved(flags, _RESERVED, char)
    has_user = bool(flags & _USER) or beurer  # BM85 sends the user id byte whatever bit 3 says
    expected = (
        _MIN_LEN
        + (DATE_TIME_LEN if flags & _TIMESTAMP else 0)
        + (2 if flags & _PULSE else 0)
        + (1 if has_user else 0)
        + (2 if flags & _STATUS else 0)
    )
    check_length(data, expected, char, flags)
    quality: set[str] = set()
    kind, values = _read_pressures(
        reader, char, "kPa" if flags & _KPA else "mm[Hg]", quality, beurer=beurer
    )
    device_time: datetime | None = None
    extra: dict[str, ExtraValue] = {}
    if flags & _TIMESTAMP:
        device_time, time_flags, time_extra = timestamp(read_date_time(reader, char), char)
        quality |= time_flags
        extra |= time_extra
    if flags & _PULSE:
        values["pulse"] = to_quantity(
            decode_sfloat(_u16(reader, "pulse rate", big_endian=beurer)), "/min", quality
        )
    if has_user:
        user = reader.u8("user id")
        extra["user_id"] = None if user == _USER_UNKNOWN else user
    if flags & _STATUS:
        quality |= _status_flags(_u16(reader, "measurement status", big_endian=beurer))
    reader.expect_end()
    return build_measurement(
        char, kind, values, device_time=device_time, flags=quality, extra=extra
    )


def _read_pressures(
    reader: Reader, char: str, unit: str, quality: set[str], *, beurer: bool
) -> tuple[str, dict[str, Quantity]]:
    """Read the three pressure slots; return the measurement kind and its pressure values."""
    systolic = reader.sfloat("systolic")
    diastolic = reader.sfloat("diastolic")
    mean_arterial = reader.u16("mean arterial pressure")
    if char == INTERMEDIATE_CUFF_PRESSURE:
        # BPS, Intermediate Cuff Pressure: the other two slots are unused (Nordic sends 0x0000,
        # many cuffs NaN); both are accepted and ignored.
        quality.add("intermediate")
        return "intermediate_cuff_pressure", {"cuff_pressure": to_quantity(systolic, unit, quality)}
    values = {
        "systolic": to_quantity(systolic, unit, quality),
        "diastolic": to_quantity(diastolic, unit, quality),
    }
    if beurer and mean_arterial == 0:
        values["mean_arterial"] = Quantity(None, unit)  # the BM85 computes no MAP
    else:
        values["mean_arterial"] = to_quantity(decode_sfloat(mean_arterial), unit, quality)
    return "blood_pressure", values


def _u16(reader: Reader, field: str, *, big_endian: bool) -> int:
    return int.from_bytes(reader.take(2, field), "big" if big_endian else "little")


def _status_flags(status: int) -> set[str]:
    """Map a Measurement Status to quality flags, the pulse rate range (bits 3-4) included."""
    flags = set(bit_names(status, _STATUS_BITS))
    pulse_range = _PULSE_RANGE.get(status >> _PULSE_RANGE_SHIFT & 0b11)
    if pulse_range:
        flags.add(pulse_range)
    return flags
