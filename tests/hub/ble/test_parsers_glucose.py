from datetime import datetime

import pytest

from hub.ble.parsers import GlucoseFeature, Measurement, ParseError, Quantity
from hub.ble.parsers.glucose import parse_glucose, parse_glucose_context, parse_glucose_feature


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_g1_nordic_full():
    assert parse_glucose(h("1B 01 00 E3 07 02 1B 0B 0A 1E FB FF 1E 00 12 05 01")) == Measurement(
        characteristic="2a18",
        kind="glucose",
        values={"glucose": Quantity(3_000_000.0, "mg/dL")},  # 30 kg/L, converted as sent
        device_time=datetime(2019, 2, 27, 11, 5, 30),  # base 11:10:30 - 5 min
        flags=("battery_low", "sample_size_insufficient", "temperature_too_low"),
        patient_reading=True,
        extra={
            "sequence": 1,
            "context_follows": True,
            "time_offset_minutes": -5,
            "sample_type": "capillary_plasma",
            "sample_location": "finger",
        },
    )


def test_g5_record_without_a_value():
    assert parse_glucose(h("00 07 00 E9 07 03 0E 07 1E 00")) == Measurement(
        characteristic="2a18",
        kind="glucose",
        values={},
        device_time=datetime(2025, 3, 14, 7, 30),
        flags=("no_value",),
        patient_reading=False,
        extra={"sequence": 7, "context_follows": False},
    )


def glucose(value, unit, *, flags=(), patient=True, sample_type, location, seq=42):
    return Measurement(
        characteristic="2a18",
        kind="glucose",
        values={"glucose": Quantity(value, unit)},
        device_time=datetime(2025, 3, 14, 7, 30),
        flags=flags,
        patient_reading=patient,
        extra={
            "sequence": seq,
            "context_follows": False,
            "sample_type": sample_type,
            "sample_location": location,
        },
    )


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        (  # 100 mg/dL sent as 0.001 kg/L (m=100, e=-5), capillary whole blood, finger
            "02 2A 00 E9 07 03 0E 07 1E 00 64 B0 11",
            glucose(100.0, "mg/dL", sample_type="capillary_whole_blood", location="finger"),
        ),
        (  # 5.6 mmol/L sent as 0.0056 mol/L (m=56, e=-4), venous plasma, location n/a
            "06 2A 00 E9 07 03 0E 07 1E 00 38 C0 F4",
            glucose(5.6, "mmol/L", sample_type="venous_plasma", location="not_available"),
        ),
        (  # 112.5 mg/dL as m=1125, e=-6
            "02 2A 00 E9 07 03 0E 07 1E 00 65 A4 12",
            glucose(112.5, "mg/dL", sample_type="capillary_plasma", location="finger"),
        ),
        (  # control solution by type (10)
            "02 2A 00 E9 07 03 0E 07 1E 00 64 B0 1A",
            glucose(
                100.0,
                "mg/dL",
                flags=("control_solution",),
                patient=False,
                sample_type="control_solution",
                location="finger",
            ),
        ),
        (  # control solution by location (4)
            "02 2A 00 E9 07 03 0E 07 1E 00 64 B0 41",
            glucose(
                100.0,
                "mg/dL",
                flags=("control_solution",),
                patient=False,
                sample_type="capillary_whole_blood",
                location="control_solution",
            ),
        ),
        (  # NaN concentration with a "result too high" annunciation, reserved type/location
            "0A 2A 00 E9 07 03 0E 07 1E 00 FF 07 00 20 00",
            glucose(
                None,
                "mg/dL",
                flags=("no_value", "result_too_high", "value_nan"),
                patient=False,
                sample_type=None,
                location=None,
            ),
        ),
    ],
)
def test_concentrations(vector, expected):
    assert parse_glucose(h(vector)) == expected


def test_offset_crossing_midnight_and_unknown_base_date():
    assert parse_glucose(h("01 02 00 E9 07 03 0E 00 0A 00 EC FF")).device_time == datetime(
        2025, 3, 13, 23, 50
    )
    assert parse_glucose(h("01 02 00 00 00 00 00 00 0A 00 EC FF")) == Measurement(
        characteristic="2a18",
        kind="glucose",
        values={},
        device_time=None,
        flags=("device_time_incomplete", "no_value"),
        patient_reading=False,
        extra={
            "sequence": 2,
            "context_follows": False,
            "time_offset_minutes": -20,
            "device_time_year": None,
            "device_time_month": None,
            "device_time_day": None,
            "device_time_hour": 0,
            "device_time_minute": 10,
            "device_time_second": 0,
        },
    )


@pytest.mark.parametrize(
    "vector",
    [
        "1B 00 00 E2 07 04 1A 0B 09 1E 1E 00 12 05 01",  # G2: offset flagged, bytes missing
        "00 07 00 E9 07 03 0E 07 1E",
        "00 07 00 E9 07 03 0E 07 1E 00 64",  # G5 plus a byte (xDrip's bug reads it)
        "02 07 00 E9 07 03 0E 07 1E 00 64 B0",
        "20 07 00 E9 07 03 0E 07 1E 00",  # reserved flag bit
        "01 07 00 0F 27 0C 1F 17 3B 3B FF 7F",  # 9999-12-31 + 32767 min leaves the calendar
    ],
)
def test_invalid(vector):
    with pytest.raises(ParseError):
        parse_glucose(h(vector))


def test_context():
    # derived: carbohydrate lunch 0.05 kg, postprandial, self / no health issues,
    # exercise 1800 s at 50 %, rapid-acting insulin 0.5 mL (liters flag), HbA1c 6.5 %
    vector = "7F 2A 00 02 05 E0 02 51 08 07 32 01 05 C0 41 F0"
    assert parse_glucose_context(h(vector)) == Measurement(
        characteristic="2a34",
        kind="glucose_context",
        values={
            "carbohydrate": Quantity(50.0, "g"),
            "exercise_duration": Quantity(1800.0, "s"),
            "exercise_intensity": Quantity(50.0, "%"),
            "medication": Quantity(0.5, "mL"),
            "hba1c": Quantity(6.5, "%"),
        },
        device_time=None,
        flags=(),
        patient_reading=True,
        extra={
            "sequence": 42,
            "carbohydrate": "lunch",
            "meal": "postprandial",
            "tester": "self",
            "health": "no_health_issues",
            "medication": "rapid_acting_insulin",
        },
    )


def test_context_medication_in_kg_and_exercise_overrun():
    assert parse_glucose_context(h("18 01 00 FF FF 64 04 05 A0")) == Measurement(
        characteristic="2a34",
        kind="glucose_context",
        values={
            "exercise_duration": Quantity(None, "s"),
            "exercise_intensity": Quantity(100.0, "%"),
            "medication": Quantity(5.0, "mg"),  # 5e-6 kg
        },
        device_time=None,
        flags=("exercise_duration_overrun",),
        patient_reading=True,
        extra={"sequence": 1, "medication": "long_acting_insulin"},
    )
    assert parse_glucose_context(h("02 01 00 03")).flags == ("no_value",)
    for bad in ("02 01 00", "00 01", "80 01 00 01", "00 01 00 00"):
        with pytest.raises(ParseError):
            parse_glucose_context(h(bad))


def test_feature():
    assert parse_glucose_feature(h("03 04")) == GlucoseFeature(
        supported=("low_battery_detection", "multiple_bond", "sensor_malfunction_detection")
    )
    with pytest.raises(ParseError):
        parse_glucose_feature(h("03"))
