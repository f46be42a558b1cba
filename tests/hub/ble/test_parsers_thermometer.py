from datetime import datetime

import pytest

from hub.ble.parsers import Measurement, ParseError, Quantity, TemperatureType
from hub.ble.parsers.thermometer import (
    parse_intermediate_temperature,
    parse_temperature,
    parse_temperature_type,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def temperature(value, unit="Cel", *, device_time=None, flags=(), patient=True, extra=None):
    return Measurement(
        characteristic="2a1c",
        kind="body_temperature",
        values={"temperature": Quantity(value, unit)},
        device_time=device_time,
        flags=flags,
        patient_reading=patient,
        extra=extra or {},
    )


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        (  # T1
            "06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04",
            temperature(
                37.6,
                device_time=datetime(2012, 12, 5, 11, 50, 27),
                extra={"temperature_type": "finger"},
            ),
        ),
        ("04 7B EF FF FD 09", temperature(-4.229, extra={"temperature_type": "tympanum"})),  # T5
        ("01 01 02 03 04", temperature(1971210000.0, "[degF]")),  # T6
        ("01 DA 03 00 FF", temperature(98.6, "[degF]")),  # T7
        (  # T9
            "00 FF FF 7F 00",
            temperature(None, flags=("no_value", "value_nan"), patient=False),
        ),
        ("00 72 01 00 FF", temperature(37.0)),  # F18 inside a measurement
        (
            "00 00 00 80 00",
            temperature(None, flags=("no_value", "value_nres"), patient=False),
        ),
        (
            "00 FE FF 7F 00",
            temperature(None, flags=("no_value", "value_positive_infinity"), patient=False),
        ),
        (
            "00 02 00 80 00",
            temperature(None, flags=("no_value", "value_negative_infinity"), patient=False),
        ),
        (
            "00 01 00 80 00",
            temperature(None, flags=("no_value", "value_reserved"), patient=False),
        ),
        (  # a reserved temperature type keeps the value and says so
            "04 72 01 00 FF 0A",
            temperature(
                37.0, flags=("temperature_type_reserved",), extra={"temperature_type": None}
            ),
        ),
        (  # a clock that knows the time but not the date
            "02 72 01 00 FF 00 00 00 00 08 1E 00",
            temperature(
                37.0,
                flags=("device_time_incomplete",),
                extra={
                    "device_time_year": None,
                    "device_time_month": None,
                    "device_time_day": None,
                    "device_time_hour": 8,
                    "device_time_minute": 30,
                    "device_time_second": 0,
                },
            ),
        ),
    ],
)
def test_temperature(vector, expected):
    assert parse_temperature(h(vector)) == expected


@pytest.mark.parametrize(
    "vector",
    [
        "06 B0 0E 00 FE DC 07 0C 05 0B 32 1B",  # T2: type flagged, byte missing
        "00 B0 0E 00",
        "00 B0 0E 00 FE 00",
        "08 B0 0E 00 FE",  # reserved flag bit 3
        "02 B0 0E 00 FE DC 07 00 20 0B 32 1B",  # day 32
    ],
)
def test_invalid(vector):
    with pytest.raises(ParseError):
        parse_temperature(h(vector))


def test_intermediate_temperature_is_not_a_patient_reading():
    assert parse_intermediate_temperature(h("01 DA 03 00 FF")) == Measurement(
        characteristic="2a1e",
        kind="body_temperature",
        values={"temperature": Quantity(98.6, "[degF]")},
        device_time=None,
        flags=("intermediate",),
        patient_reading=False,
        extra={},
    )


def test_temperature_type():
    assert parse_temperature_type(h("06")) == TemperatureType(code=6, location="mouth")
    assert parse_temperature_type(h("01")) == TemperatureType(code=1, location="armpit")
    for bad in ("00", "0A", "", "01 01"):
        with pytest.raises(ParseError):
            parse_temperature_type(h(bad))
