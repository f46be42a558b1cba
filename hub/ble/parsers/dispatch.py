"""Pick the parser for a characteristic UUID, and turn any parse result into JSON-ready data."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeAlias

from hub.ble.parsers import (
    blood_pressure,
    current_time,
    date_time,
    glucose,
    heart_rate,
    pulse_oximeter,
    racp,
    thermometer,
    weight_scale,
)
from hub.ble.parsers.errors import UnknownCharacteristic
from hub.ble.parsers.values import Measurement

if TYPE_CHECKING:
    from collections.abc import Mapping

Result: TypeAlias = (
    Measurement
    | blood_pressure.BloodPressureFeature
    | thermometer.TemperatureType
    | pulse_oximeter.PlxFeatures
    | glucose.GlucoseFeature
    | racp.RacpResponse
    | racp.RacpNumberOfRecords
    | weight_scale.WeightScaleFeature
    | date_time.DateTime
    | current_time.CurrentTime
    | current_time.LocalTimeInformation
)
"""Everything `parse` returns."""

JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None


class Parser(Protocol):
    """The signature every characteristic parser has."""

    def __call__(self, data: bytes, *, quirks: frozenset[str] = ...) -> Result:
        """Decode `data`, applying only the named quirks; raise ParseError when it is invalid."""


# uuid16 → (name, parser); the name is the GATT Specification Supplement's.
PARSERS: Mapping[str, tuple[str, Parser]] = {
    date_time.DATE_TIME: ("Date Time", date_time.parse_date_time),
    current_time.LOCAL_TIME_INFORMATION: (
        "Local Time Information",
        current_time.parse_local_time_information,
    ),
    glucose.GLUCOSE_MEASUREMENT: ("Glucose Measurement", glucose.parse_glucose),
    thermometer.TEMPERATURE_MEASUREMENT: (
        "Temperature Measurement",
        thermometer.parse_temperature,
    ),
    thermometer.TEMPERATURE_TYPE: ("Temperature Type", thermometer.parse_temperature_type),
    thermometer.INTERMEDIATE_TEMPERATURE: (
        "Intermediate Temperature",
        thermometer.parse_intermediate_temperature,
    ),
    current_time.CURRENT_TIME: ("Current Time", current_time.parse_current_time),
    glucose.GLUCOSE_MEASUREMENT_CONTEXT: (
        "Glucose Measurement Context",
        glucose.parse_glucose_context,
    ),
    blood_pressure.BLOOD_PRESSURE_MEASUREMENT: (
        "Blood Pressure Measurement",
        blood_pressure.parse_blood_pressure,
    ),
    blood_pressure.INTERMEDIATE_CUFF_PRESSURE: (
        "Intermediate Cuff Pressure",
        blood_pressure.parse_intermediate_cuff_pressure,
    ),
    heart_rate.HEART_RATE_MEASUREMENT: ("Heart Rate Measurement", heart_rate.parse_heart_rate),
    blood_pressure.BLOOD_PRESSURE_FEATURE: (
        "Blood Pressure Feature",
        blood_pressure.parse_blood_pressure_feature,
    ),
    glucose.GLUCOSE_FEATURE: ("Glucose Feature", glucose.parse_glucose_feature),
    racp.RACP: ("Record Access Control Point (responses)", racp.parse_racp),
    pulse_oximeter.PLX_SPOT_CHECK: (
        "PLX Spot-check Measurement",
        pulse_oximeter.parse_plx_spot_check,
    ),
    pulse_oximeter.PLX_CONTINUOUS: (
        "PLX Continuous Measurement",
        pulse_oximeter.parse_plx_continuous,
    ),
    pulse_oximeter.PLX_FEATURES: ("PLX Features", pulse_oximeter.parse_plx_features),
    weight_scale.WEIGHT_MEASUREMENT: ("Weight Measurement", weight_scale.parse_weight),
    weight_scale.WEIGHT_SCALE_FEATURE: (
        "Weight Scale Feature",
        weight_scale.parse_weight_scale_feature,
    ),
}
"""Every characteristic `parse` decodes, by 16-bit UUID."""

# Core Specification 5.4, Vol 3, Part B, 2.5.1: a 16-bit UUID is xxxx in the Bluetooth Base UUID.
_BASE_UUID = re.compile(r"0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb")
_UUID16 = re.compile(r"(?:0x)?(?:0000)?([0-9a-f]{4})")
_MAX_UUID16 = 0xFFFF
_MAX_SPELLING = 64


def normalize_uuid16(characteristic: str | int) -> str:
    """Return a 16-bit UUID as four lowercase hex digits.

    Accepts ``0x2A35`` (int), ``"2A35"``, ``"0x2a35"`` and the full Bluetooth Base UUID spelling
    ``"00002a35-0000-1000-8000-00805f9b34fb"``.

    Raises:
        UnknownCharacteristic: the spelling is none of these.
    """
    if isinstance(characteristic, int) and not isinstance(characteristic, bool):
        if 0 <= characteristic <= _MAX_UUID16:
            return f"{characteristic:04x}"
        raise UnknownCharacteristic(str(characteristic), "not a 16-bit UUID (0..0xffff)")
    if not isinstance(characteristic, str):
        raise UnknownCharacteristic(repr(characteristic), "a UUID is a string or an int")
    spelling = characteristic.strip().lower()[:_MAX_SPELLING]
    match = _BASE_UUID.fullmatch(spelling) or _UUID16.fullmatch(spelling)
    if match is None:
        raise UnknownCharacteristic(
            characteristic[:_MAX_SPELLING],
            "not a 16-bit UUID: write 2a35, 0x2a35 or 00002a35-0000-1000-8000-00805f9b34fb",
        )
    return match.group(1)


def parse(
    characteristic: str | int, data: bytes, *, quirks: frozenset[str] = frozenset()
) -> Result:
    """Decode `data` as a value of `characteristic`, applying only the `quirks` named.

    Raises:
        UnknownCharacteristic: no parser here decodes that characteristic.
        ParseError: the bytes are not a valid value of it.
    """
    uuid16 = normalize_uuid16(characteristic)
    entry = PARSERS.get(uuid16)
    if entry is None:
        raise UnknownCharacteristic(uuid16, "no parser decodes this characteristic")
    return entry[1](data, quirks=quirks)


def to_json_dict(result: Result) -> dict[str, JsonValue]:
    """Return `result` as JSON-ready data: characteristic and kind first, then its fields."""
    if isinstance(result, Measurement):
        return {
            "characteristic": result.characteristic,
            "kind": result.kind,
            "values": {
                name: {"value": quantity.value, "unit": quantity.unit}
                for name, quantity in result.values.items()
            },
            "device_time": _json(result.device_time),
            "flags": list(result.flags),
            "patient_reading": result.patient_reading,
            "extra": dict(result.extra),
        }
    out: dict[str, JsonValue] = {"characteristic": result.characteristic, "kind": result.kind}
    out.update(_fields(result))
    return out


def _fields(value: object) -> dict[str, JsonValue]:
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"no JSON form for {type(value).__name__}")  # a bug here, not bad input
    out = {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, date_time.DateTime):
        out["value"] = _json(value.value)
    return out


def _json(value: object) -> JsonValue:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_json(item) for item in value]
    if value is None or isinstance(value, str | int | float):
        return value
    return _fields(value)
