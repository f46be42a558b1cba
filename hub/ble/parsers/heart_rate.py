"""Heart Rate Service: Heart Rate Measurement 0x2A37."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.ble.parsers._codec import Reader, check_input, check_reserved
from hub.ble.parsers.errors import ParseError
from hub.ble.parsers.values import Measurement, Quantity, build_measurement

if TYPE_CHECKING:
    from hub.ble.parsers.values import ExtraValue

HEART_RATE_MEASUREMENT = "2a37"

# GSS "Heart Rate Measurement" flags.
_UINT16 = 0x01
_CONTACT_SHIFT = 1
_ENERGY = 0x08
_RR = 0x10
_RESERVED = 0xE0
# Sensor contact status (flags bits 1-2): 0 or 1 = not supported.
_CONTACT = {0: "not_supported", 1: "not_supported", 2: "not_detected", 3: "detected"}
_RR_SIZE = 2  # uint16 per RR-interval
_RR_UNITS_PER_SECOND = 1024  # GSS "Heart Rate Measurement": RR-Interval resolution is 1/1024 s


def parse_heart_rate(data: bytes, *, quirks: frozenset[str] = frozenset()) -> Measurement:  # noqa: ARG001 - every parser takes quirks
    """Parse a Heart Rate Measurement (0x2A37); RR-intervals become ``rr_interval_<n>`` in s."""
    char = HEART_RATE_MEASUREMENT
    data = check_input(data, char)
    reader = Reader(data, char)
    flags = reader.u8("flags")
    check_reserved(flags, _RESERVED, char)
    rate = reader.u16("heart rate") if flags & _UINT16 else reader.u8("heart rate")
    values = {"heart_rate": Quantity(float(rate), "/min")}
    quality: set[str] = set()
    contact = _CONTACT[flags >> _CONTACT_SHIFT & 0b11]
    if contact == "not_detected":
        quality.add("sensor_contact_not_detected")
    extra: dict[str, ExtraValue] = {"sensor_contact": contact}
    if flags & _ENERGY:
        values["energy_expended"] = Quantity(float(reader.u16("energy expended")), "kJ")
    if flags & _RR:
        # GSS "Heart Rate Measurement": RR-intervals repeat to the end of the value, at least one.
        if reader.remaining < _RR_SIZE or reader.remaining % _RR_SIZE:
            raise ParseError(
                char, f"RR-intervals need a positive, even number of bytes, got {reader.remaining}"
            )
        for index in range(1, reader.remaining // _RR_SIZE + 1):
            raw = reader.u16("RR-interval")
            values[f"rr_interval_{index}"] = Quantity(raw / _RR_UNITS_PER_SECOND, "s")
    reader.expect_end()
    return build_measurement(
        char, "heart_rate", values, device_time=None, flags=quality, extra=extra
    )
