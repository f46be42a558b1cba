"""Pulse Oximeter Service: Spot-check 0x2A5E, Continuous 0x2A5F and PLX Features 0x2A60."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from hub.ble.parsers._codec import (
    Reader,
    bit_names,
    check_input,
    read_flags,
)
from hub.ble.parsers.date_time import DATE_TIME_LEN, read_date_time, timestamp
from hub.ble.parsers.values import Measurement, Quantity, build_measurement, to_quantity

if TYPE_CHECKING:
    from datetime import datetime

    from hub.ble.parsers.values import ExtraValue

PLX_SPOT_CHECK = "2a5e"
PLX_CONTINUOUS = "2a5f"
PLX_FEATURES = "2a60"

# GSS "PLX Spot-check Measurement" flags.
_SPOT_TIMESTAMP = 0x01
_SPOT_STATUS = 0x02
_SPOT_DEVICE_STATUS = 0x04
_SPOT_PAI = 0x08
_SPOT_CLOCK_NOT_SET = 0x10
# GSS "PLX Continuous Measurement" flags.
_CONT_FAST = 0x01
_CONT_SLOW = 0x02
_CONT_STATUS = 0x04
_CONT_DEVICE_STATUS = 0x08
_CONT_PAI = 0x10
_RESERVED = 0xE0
_MIN_LEN = 5  # flags + SpO2 + PR, two SFLOATs
_DEVICE_STATUS_LEN = 3  # uint24

# Measurement Status (uint16); bits 0-4 are reserved.
MEASUREMENT_STATUS_BITS = {
    5: "measurement_ongoing",
    6: "early_estimated_data",
    7: "validated_data",
    8: "fully_qualified_data",
    9: "data_from_storage",
    10: "demo_data",
    11: "test_data",
    12: "calibration_ongoing",
    13: "measurement_unavailable",
    14: "questionable_measurement",
    15: "invalid_measurement",
}
# Device and Sensor Status (uint24); bits 16-23 are reserved.
DEVICE_STATUS_BITS = {
    0: "extended_display_update_ongoing",
    1: "equipment_malfunction",
    2: "signal_processing_irregularity",
    3: "inadequate_signal",
    4: "poor_signal",
    5: "low_perfusion",
    6: "erratic_signal",
    7: "non_pulsatile_signal",
    8: "questionable_pulse",
    9: "signal_analysis_ongoing",
    10: "sensor_interference",
    11: "sensor_unconnected_to_user",
    12: "unknown_sensor_connected",
    13: "sensor_displaced",
    14: "sensor_malfunctioning",
    15: "sensor_disconnected",
}
# GSS "PLX Features" supported features; bits 8-15 are reserved.
FEATURE_BITS = {
    0: "measurement_status",
    1: "device_and_sensor_status",
    2: "spot_check_measurement_storage",
    3: "spot_check_timestamp",
    4: "spo2pr_fast",
    5: "spo2pr_slow",
    6: "pulse_amplitude_index",
    7: "multiple_bonds",
}
_FEATURE_STATUS = 0x0001
_FEATURE_DEVICE_STATUS = 0x0002


@dataclass(frozen=True, slots=True)
class PlxFeatures:
    """What a pulse oximeter supports; the support sets are None when not declared."""

    characteristic: ClassVar[str] = PLX_FEATURES
    kind: ClassVar[str] = "plx_features"

    supported: tuple[str, ...]
    measurement_status_support: tuple[str, ...] | None
    device_and_sensor_status_support: tuple[str, ...] | None


def parse_plx_spot_check(data: bytes, *, quirks: frozenset[str] = frozenset()) -> Measurement:  # noqa: ARG001 - every parser takes quirks
    """Parse a PLX Spot-check Measurement (0x2A5E): SpO2 and pulse rate, optionally time-stamped."""
    char = PLX_SPOT_CHECK
    reader, flags = read_flags(
        data,
        char,
        reserved=_RESERVED,
        min_len=_MIN_LEN,
        optional=(
            (_SPOT_TIMESTAMP, DATE_TIME_LEN),
            (_SPOT_STATUS, 2),
            (_SPOT_DEVICE_STATUS, _DEVICE_STATUS_LEN),
            (_SPOT_PAI, 2),
        ),
    )
    quality: set[str] = set()
    values = {
        "spo2": to_quantity(reader.sfloat("SpO2"), "%", quality),
        "pulse": to_quantity(reader.sfloat("pulse rate"), "/min", quality),
    }
    device_time: datetime | None = None
    extra: dict[str, ExtraValue] = {}
    if flags & _SPOT_TIMESTAMP:
        stamp = read_date_time(reader, char)
        if flags & _SPOT_CLOCK_NOT_SET:
            extra |= stamp.parts("device_time")  # kept for a clock-offset estimate, never trusted
        else:
            device_time, time_flags, time_extra = timestamp(stamp, char)
            quality |= time_flags
            extra |= time_extra
    if flags & _SPOT_CLOCK_NOT_SET:
        quality.add("device_clock_not_set")
    _read_tail(
        reader,
        values,
        quality,
        status=bool(flags & _SPOT_STATUS),
        device_status=bool(flags & _SPOT_DEVICE_STATUS),
        pai=bool(flags & _SPOT_PAI),
    )
    return build_measurement(
        char, "spo2_spot_check", values, device_time=device_time, flags=quality, extra=extra
    )


def parse_plx_continuous(data: bytes, *, quirks: frozenset[str] = frozenset()) -> Measurement:  # noqa: ARG001 - every parser takes quirks
    """Parse a PLX Continuous Measurement (0x2A5F): SpO2 and pulse rate, normal/fast/slow."""
    char = PLX_CONTINUOUS
    reader, flags = read_flags(
        data,
        char,
        reserved=_RESERVED,
        min_len=_MIN_LEN,
        optional=(
            (_CONT_FAST, 4),
            (_CONT_SLOW, 4),
            (_CONT_STATUS, 2),
            (_CONT_DEVICE_STATUS, _DEVICE_STATUS_LEN),
            (_CONT_PAI, 2),
        ),
    )
    quality: set[str] = set()
    values = {
        "spo2": to_quantity(reader.sfloat("SpO2"), "%", quality),
        "pulse": to_quantity(reader.sfloat("pulse rate"), "/min", quality),
    }
    for speed, bit in (("fast", _CONT_FAST), ("slow", _CONT_SLOW)):
        if flags & bit:
            values[f"spo2_{speed}"] = to_quantity(reader.sfloat(f"SpO2 {speed}"), "%", quality)
            values[f"pulse_{speed}"] = to_quantity(
                reader.sfloat(f"pulse rate {speed}"), "/min", quality
            )
    _read_tail(
        reader,
        values,
        quality,
        status=bool(flags & _CONT_STATUS),
        device_status=bool(flags & _CONT_DEVICE_STATUS),
        pai=bool(flags & _CONT_PAI),
    )
    return build_measurement(
        char, "spo2_continuous", values, device_time=None, flags=quality, extra={}
    )


def parse_plx_features(data: bytes, *, quirks: frozenset[str] = frozenset()) -> PlxFeatures:  # noqa: ARG001 - every parser takes quirks
    """Parse PLX Features (0x2A60): supported features and, when flagged, the status support."""
    char = PLX_FEATURES
    data = check_input(data, char)
    reader = Reader(data, char)
    supported = reader.u16("supported features")
    status = device = None
    if supported & _FEATURE_STATUS:
        status = bit_names(reader.u16("measurement status support"), MEASUREMENT_STATUS_BITS)
    if supported & _FEATURE_DEVICE_STATUS:
        device = bit_names(
            reader.uint(_DEVICE_STATUS_LEN, "device and sensor status support"),
            DEVICE_STATUS_BITS,
        )
    reader.expect_end()
    return PlxFeatures(bit_names(supported, FEATURE_BITS), status, device)


def _read_tail(
    reader: Reader,
    values: dict[str, Quantity],
    quality: set[str],
    *,
    status: bool,
    device_status: bool,
    pai: bool,
) -> None:
    """Read the fields both PLX measurements end with: statuses and pulse amplitude index."""
    if status:
        quality.update(bit_names(reader.u16("measurement status"), MEASUREMENT_STATUS_BITS))
    if device_status:
        raw = reader.uint(_DEVICE_STATUS_LEN, "device and sensor status")
        quality.update(bit_names(raw, DEVICE_STATUS_BITS))
    if pai:
        values["pulse_amplitude_index"] = to_quantity(
            reader.sfloat("pulse amplitude index"), "%", quality
        )
    reader.expect_end()
