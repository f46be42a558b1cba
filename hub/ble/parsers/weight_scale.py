"""Weight Scale Service: Weight Measurement 0x2A9D and Weight Scale Feature 0x2A9E."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar

from hub.ble.parsers._codec import check_input, check_length, read_flags
from hub.ble.parsers.date_time import DATE_TIME_LEN, read_date_time, timestamp
from hub.ble.parsers.errors import ParseError
from hub.ble.parsers.values import Measurement, Quantity, build_measurement

if TYPE_CHECKING:
    from datetime import datetime

    from hub.ble.parsers.values import ExtraValue

WEIGHT_MEASUREMENT = "2a9d"
WEIGHT_SCALE_FEATURE = "2a9e"

# GSS "Weight Measurement" flags; bit 3 means BMI *and* height.
_IMPERIAL = 0x01
_TIMESTAMP = 0x02
_USER = 0x04
_BMI_HEIGHT = 0x08
_RESERVED = 0xF0
_MIN_LEN = 3  # flags + weight uint16
_UNSUCCESSFUL = 0xFFFF  # GSS "Weight Measurement": weight 0xFFFF = "Measurement Unsuccessful"
_USER_UNKNOWN = 0xFF
# GSS "Weight Measurement" fixed resolutions (never the Feature's granularity).
_KG = Decimal("0.005")
_LB = Decimal("0.01")
_M = Decimal("0.001")
_IN = Decimal("0.1")
_BMI = Decimal("0.1")
# Sanity bounds, not spec: a uint16 height reaches 65.535 m and a BMI 6553.5; no person does.
_MAX_HEIGHT = {"m": 3.0, "[in_i]": 120.0}
_MAX_BMI = 250.0

# GSS "Weight Scale Feature" (uint32).
_FEATURE_LEN = 4
_FEATURE_TIMESTAMP = 0x01
_FEATURE_MULTIPLE_USERS = 0x02
_FEATURE_BMI = 0x04
_WEIGHT_RES_SHIFT = 3
_HEIGHT_RES_SHIFT = 7
# resolution code → (kg, lb) and (m, in); 0 = not specified, the rest reserved.
_WEIGHT_RESOLUTIONS = {
    1: (0.5, 1.0),
    2: (0.2, 0.5),
    3: (0.1, 0.2),
    4: (0.05, 0.1),
    5: (0.02, 0.05),
    6: (0.01, 0.02),
    7: (0.005, 0.01),
}
_HEIGHT_RESOLUTIONS = {1: (0.01, 1.0), 2: (0.005, 0.5), 3: (0.001, 0.1)}


@dataclass(frozen=True, slots=True)
class WeightScaleFeature:
    """What a scale supports; resolutions are its granularity only, None when not specified."""

    characteristic: ClassVar[str] = WEIGHT_SCALE_FEATURE
    kind: ClassVar[str] = "weight_scale_feature"

    timestamp_supported: bool
    multiple_users_supported: bool
    bmi_supported: bool
    weight_resolution_kg: float | None
    weight_resolution_lb: float | None
    height_resolution_m: float | None
    height_resolution_in: float | None


def parse_weight(data: bytes, *, quirks: frozenset[str] = frozenset()) -> Measurement:  # noqa: ARG001 - every parser takes quirks
    """Parse a Weight Measurement (0x2A9D): weight, and BMI with height when flagged."""
    char = WEIGHT_MEASUREMENT
    reader, flags = read_flags(
        data,
        char,
        reserved=_RESERVED,
        min_len=_MIN_LEN,
        optional=((_TIMESTAMP, DATE_TIME_LEN), (_USER, 1), (_BMI_HEIGHT, 4)),
    )
    imperial = bool(flags & _IMPERIAL)
    weight_unit, height_unit = ("[lb_av]", "[in_i]") if imperial else ("kg", "m")
    quality: set[str] = set()
    raw = reader.u16("weight")
    values: dict[str, Quantity] = {}
    if raw == _UNSUCCESSFUL:
        if flags & _BMI_HEIGHT:
            raise ParseError(char, "an unsuccessful measurement (0xFFFF) must not carry BMI/height")
        quality.add("measurement_unsuccessful")
        values["weight"] = Quantity(None, weight_unit)
    else:
        values["weight"] = Quantity(float(raw * (_LB if imperial else _KG)), weight_unit)
    device_time: datetime | None = None
    extra: dict[str, ExtraValue] = {}
    if flags & _TIMESTAMP:
        device_time, time_flags, time_extra = timestamp(read_date_time(reader, char), char)
        quality |= time_flags
        extra |= time_extra
    if flags & _USER:
        user = reader.u8("user id")
        extra["user_id"] = None if user == _USER_UNKNOWN else user
    if flags & _BMI_HEIGHT:
        bmi = float(reader.u16("BMI") * _BMI)
        height = float(reader.u16("height") * (_IN if imperial else _M))
        if bmi > _MAX_BMI:
            quality.add("bmi_implausible")
        if height > _MAX_HEIGHT[height_unit]:
            quality.add("height_implausible")
        values["bmi"] = Quantity(None if bmi > _MAX_BMI else bmi, "kg/m2")
        values["height"] = Quantity(
            None if height > _MAX_HEIGHT[height_unit] else height, height_unit
        )
    reader.expect_end()
    return build_measurement(
        char, "body_weight", values, device_time=device_time, flags=quality, extra=extra
    )


def parse_weight_scale_feature(
    data: bytes,
    *,
    quirks: frozenset[str] = frozenset(),  # noqa: ARG001 - every parser takes quirks
) -> WeightScaleFeature:
    """Parse a Weight Scale Feature (0x2A9E) value: a uint32."""
    data = check_input(data, WEIGHT_SCALE_FEATURE)
    check_length(data, _FEATURE_LEN, WEIGHT_SCALE_FEATURE)
    raw = int.from_bytes(data, "little")
    weight = _WEIGHT_RESOLUTIONS.get(raw >> _WEIGHT_RES_SHIFT & 0x0F, (None, None))
    height = _HEIGHT_RESOLUTIONS.get(raw >> _HEIGHT_RES_SHIFT & 0x07, (None, None))
    return WeightScaleFeature(
        timestamp_supported=bool(raw & _FEATURE_TIMESTAMP),
        multiple_users_supported=bool(raw & _FEATURE_MULTIPLE_USERS),
        bmi_supported=bool(raw & _FEATURE_BMI),
        weight_resolution_kg=weight[0],
        weight_resolution_lb=weight[1],
        height_resolution_m=height[0],
        height_resolution_in=height[1],
    )
