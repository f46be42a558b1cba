"""Health Thermometer Service: Temperature Measurement 0x2A1C, Intermediate 0x2A1E, Type 0x2A1D."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from hub.ble.parsers._codec import Reader, check_input, check_length, check_reserved
from hub.ble.parsers.date_time import DATE_TIME_LEN, read_date_time, timestamp
from hub.ble.parsers.errors import ParseError
from hub.ble.parsers.values import Measurement, build_measurement, to_quantity

if TYPE_CHECKING:
    from datetime import datetime

    from hub.ble.parsers.values import ExtraValue

TEMPERATURE_MEASUREMENT = "2a1c"
TEMPERATURE_TYPE = "2a1d"
INTERMEDIATE_TEMPERATURE = "2a1e"

# GSS "Temperature Measurement" flags.
_FAHRENHEIT = 0x01
_TIMESTAMP = 0x02
_TYPE = 0x04
_RESERVED = 0xF8
_MIN_LEN = 5  # flags + FLOAT

# GSS "Temperature Type": 0 and 10-255 are reserved.
TEMPERATURE_TYPES = {
    1: "armpit",
    2: "body",
    3: "ear",
    4: "finger",
    5: "gastrointestinal_tract",
    6: "mouth",
    7: "rectum",
    8: "toe",
    9: "tympanum",
}


@dataclass(frozen=True, slots=True)
class TemperatureType:
    """Where a thermometer measures, read from its Temperature Type characteristic."""

    characteristic: ClassVar[str] = TEMPERATURE_TYPE
    kind: ClassVar[str] = "temperature_type"

    code: int
    location: str


def parse_temperature(data: bytes, *, quirks: frozenset[str] = frozenset()) -> Measurement:  # noqa: ARG001 - every parser takes quirks
    """Parse a Temperature Measurement (0x2A1C): a body temperature in Cel or [degF]."""
    return _parse(data, TEMPERATURE_MEASUREMENT)


def parse_intermediate_temperature(
    data: bytes,
    *,
    quirks: frozenset[str] = frozenset(),  # noqa: ARG001 - every parser takes quirks
) -> Measurement:
    """Parse an Intermediate Temperature (0x2A1E): a value shown while still measuring."""
    return _parse(data, INTERMEDIATE_TEMPERATURE)


def parse_temperature_type(
    data: bytes,
    *,
    quirks: frozenset[str] = frozenset(),  # noqa: ARG001 - every parser takes quirks
) -> TemperatureType:
    """Parse a Temperature Type (0x2A1D) value: one byte, 1..9."""
    data = check_input(data, TEMPERATURE_TYPE)
    check_length(data, 1, TEMPERATURE_TYPE)
    location = TEMPERATURE_TYPES.get(data[0])
    if location is None:
        raise ParseError(TEMPERATURE_TYPE, f"temperature type {data[0]} is reserved")
    return TemperatureType(data[0], location)


def _parse(data: bytes, char: str) -> Measurement:
    data = check_input(data, char)
    reader = Reader(data, char)
    flags = reader.u8("flags")
    check_reserved(flags, _RESERVED, char)
    expected = _MIN_LEN + (DATE_TIME_LEN if flags & _TIMESTAMP else 0) + (1 if flags & _TYPE else 0)
    check_length(data, expected, char, flags)
    quality: set[str] = set()
    unit = "[degF]" if flags & _FAHRENHEIT else "Cel"
    values = {"temperature": to_quantity(reader.float32("temperature"), unit, quality)}
    device_time: datetime | None = None
    extra: dict[str, ExtraValue] = {}
    if flags & _TIMESTAMP:
        device_time, time_flags, time_extra = timestamp(read_date_time(reader, char), char)
        quality |= time_flags
        extra |= time_extra
    if flags & _TYPE:
        code = reader.u8("temperature type")
        location = TEMPERATURE_TYPES.get(code)
        if location is None:
            quality.add("temperature_type_reserved")
        extra["temperature_type"] = location
    reader.expect_end()
    if char == INTERMEDIATE_TEMPERATURE:
        quality.add("intermediate")
    return build_measurement(
        char, "body_temperature", values, device_time=device_time, flags=quality, extra=extra
    )
