import json
from datetime import datetime

import pytest

from hub.ble.parsers import (
    PARSERS,
    Measurement,
    ParseError,
    Quantity,
    UnknownCharacteristic,
    normalize_uuid16,
    parse,
    to_json_dict,
)

BP3 = bytes.fromhex("00 BD F0 0B 00 9F F0")


@pytest.mark.parametrize(
    "spelling",
    [
        "2a35",
        "2A35",
        "0x2a35",
        "0X2A35",
        " 2a35 ",
        0x2A35,
        "00002a35-0000-1000-8000-00805f9b34fb",
        "00002A35-0000-1000-8000-00805F9B34FB",
    ],
)
def test_normalize_uuid16(spelling):
    assert normalize_uuid16(spelling) == "2a35"
    assert parse(spelling, BP3) == parse("2a35", BP3)


@pytest.mark.parametrize(
    "spelling",
    [
        "",
        "2a3",
        "2a355",
        "zz35",
        "0x",
        -1,
        0x10000,
        True,
        1.5,
        None,
        "00002a35-0000-1000-8000-00805f9b34fc",  # not the Bluetooth Base UUID
        "12345678-1234-5678-1234-56789abcdef0",
    ],
)
def test_normalize_rejects(spelling):
    with pytest.raises(UnknownCharacteristic):
        normalize_uuid16(spelling)


def test_unknown_characteristic():
    with pytest.raises(UnknownCharacteristic) as info:
        parse("2a99", b"\x00")
    assert isinstance(info.value, ParseError)
    assert info.value.characteristic == "2a99"


def test_not_bytes_and_too_long():
    with pytest.raises(ParseError, match="expected bytes"):
        parse("2a35", "00 BD F0")  # type: ignore[arg-type]
    with pytest.raises(ParseError, match="512"):
        parse("2a37", b"\x10\x48" + b"\x00" * 512)
    assert parse("2a35", bytearray(BP3)) == parse("2a35", memoryview(BP3))


def test_measurement_normalises_and_is_frozen():
    a = Measurement(
        characteristic="2a35",
        kind="x",
        values={"b": Quantity(1.0, "%")},
        device_time=None,
        flags=("z", "a", "z"),
        patient_reading=True,
    )
    assert a.flags == ("a", "z")
    with pytest.raises(TypeError):
        a.values["c"] = Quantity(None, "%")  # type: ignore[index]
    with pytest.raises(AttributeError):
        a.kind = "y"  # type: ignore[misc]


def test_json_shape_of_a_measurement():
    result = parse("2a1c", bytes.fromhex("06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04"))
    assert to_json_dict(result) == {
        "characteristic": "2a1c",
        "kind": "body_temperature",
        "values": {"temperature": {"value": 37.6, "unit": "Cel"}},
        "device_time": "2012-12-05T11:50:27",
        "flags": [],
        "patient_reading": True,
        "extra": {"temperature_type": "finger"},
    }
    assert list(to_json_dict(result)) == [
        "characteristic",
        "kind",
        "values",
        "device_time",
        "flags",
        "patient_reading",
        "extra",
    ]
    assert json.dumps(to_json_dict(result)).count("37.6,") == 1


def test_json_shape_of_other_results():
    assert to_json_dict(parse("2a2b", bytes.fromhex("E8 07 06 06 0C 04 2C 04 80 01"))) == {
        "characteristic": "2a2b",
        "kind": "current_time",
        "date_time": {
            "year": 2024,
            "month": 6,
            "day": 6,
            "hours": 12,
            "minutes": 4,
            "seconds": 44,
            "value": "2024-06-06T12:04:44",
        },
        "day_of_week": "thursday",
        "fractions256": 128,
        "adjust_reasons": ["manual_time_update"],
    }
    assert to_json_dict(parse("2a52", bytes.fromhex("05 00 02 01"))) == {
        "characteristic": "2a52",
        "kind": "racp_number_of_records",
        "count": 258,
    }
    assert to_json_dict(parse("2a60", bytes.fromhex("00 00"))) == {
        "characteristic": "2a60",
        "kind": "plx_features",
        "supported": [],
        "measurement_status_support": None,
        "device_and_sensor_status_support": None,
    }
    assert to_json_dict(parse("2a08", bytes.fromhex("00 00 00 00 12 1A 20"))) == {
        "characteristic": "2a08",
        "kind": "date_time",
        "year": None,
        "month": None,
        "day": None,
        "hours": 18,
        "minutes": 26,
        "seconds": 32,
        "value": None,
    }


def test_every_registered_parser_reports_its_own_characteristic():
    for uuid16 in PARSERS:
        with pytest.raises(ParseError) as info:
            parse(uuid16, b"\xff" * 40)
        assert info.value.characteristic == uuid16


def test_json_device_time_is_naive_iso():
    result = parse("2a9d", bytes.fromhex("02 40 33 EA 07 08 16 08 2B 0B"))
    assert isinstance(result, Measurement)
    assert result.device_time == datetime(2026, 8, 22, 8, 43, 11)
    assert to_json_dict(result)["device_time"] == "2026-08-22T08:43:11"
