from datetime import datetime

import pytest

from hub.ble.parsers import BloodPressureFeature, Measurement, ParseError, Quantity
from hub.ble.parsers.blood_pressure import (
    parse_blood_pressure,
    parse_blood_pressure_feature,
    parse_intermediate_cuff_pressure,
)

MMHG = "mm[Hg]"
PARTS_0_04_17_20_41_59 = {
    "device_time_year": None,
    "device_time_month": 4,
    "device_time_day": 17,
    "device_time_hour": 20,
    "device_time_minute": 41,
    "device_time_second": 59,
}


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def bp(systolic, diastolic, mean_arterial, unit=MMHG, pulse=None):
    values = {
        "systolic": Quantity(systolic, unit),
        "diastolic": Quantity(diastolic, unit),
        "mean_arterial": Quantity(mean_arterial, unit),
    }
    if pulse is not None:
        values["pulse"] = Quantity(pulse, "/min")
    return values


def test_bp1_full_with_unknown_year():
    assert parse_blood_pressure(
        h("1E 8A 00 58 00 78 00 00 00 04 11 14 29 3B 3C 00 01 27 00")
    ) == Measurement(
        characteristic="2a35",
        kind="blood_pressure",
        values=bp(138.0, 88.0, 120.0, pulse=60.0),
        device_time=None,
        flags=(
            "body_movement",
            "cuff_too_loose",
            "device_time_incomplete",
            "improper_position",
            "irregular_pulse",
        ),
        patient_reading=True,
        extra={**PARTS_0_04_17_20_41_59, "user_id": 1},
    )


def test_bp3_minimal():
    assert parse_blood_pressure(h("00 BD F0 0B 00 9F F0")) == Measurement(
        characteristic="2a35",
        kind="blood_pressure",
        values=bp(18.9, 11.0, 15.9),
        device_time=None,
        flags=(),
        patient_reading=True,
        extra={},
    )


@pytest.mark.parametrize(
    "vector",
    [
        "01 02 03 04 05 06",  # BP4: 6 bytes < 7
        "03 02 03 04 05 06 07",  # BP5: timestamp flagged, missing
        "",
        "1E 8A 00 58 00 78 00 00 00 04 11 14 29 3B 3C 00 01 27",  # status cut short
        "00 BD F0 0B 00 9F F0 00",  # one byte the flags do not declare
        "20 BD F0 0B 00 9F F0",  # reserved flag bit 5
        "02 BD F0 0B 00 9F F0 E8 07 0D 0F 11 11 1B",  # month 13
        "02 BD F0 0B 00 9F F0 E8 07 02 1E 11 11 1B",  # 30 February
        "02 BD F0 0B 00 9F F0 E8 07 02 0F 18 11 1B",  # hour 24
        "02 BD F0 0B 00 9F F0 E8 03 02 0F 11 11 1B",  # year 1000
    ],
)
def test_invalid(vector):
    with pytest.raises(ParseError) as info:
        parse_blood_pressure(h(vector))
    assert info.value.characteristic == "2a35"
    assert info.value.reason


def status_frame(status: str) -> bytes:
    return h(f"16 7C 00 56 00 61 00 E8 07 06 0F 11 11 1B 33 00 {status}")


@pytest.mark.parametrize(
    ("status", "flags"),
    [
        ("00 00", ()),  # BP6 (hidden in the table; the BPMFL sample data)
        ("27 00", ("body_movement", "cuff_too_loose", "improper_position", "irregular_pulse")),
        ("08 00", ("pulse_rate_above_range",)),  # BP8
        ("10 00", ("pulse_rate_below_range",)),  # BP9
        ("18 00", ()),  # pulse rate range 3 is reserved
        ("C0 FF", ()),  # reserved status bits 6-15
    ],
)
def test_bp6_to_bp9_status(status, flags):
    assert parse_blood_pressure(status_frame(status)) == Measurement(
        characteristic="2a35",
        kind="blood_pressure",
        values=bp(124.0, 86.0, 97.0, pulse=51.0),
        device_time=datetime(2024, 6, 15, 17, 17, 27),
        flags=flags,
        patient_reading=True,
        extra={},
    )


BP10 = "56 6A 00 47 00 00 00 EA 07 08 0B 12 1F 00 00 3F 00 00 00"


def test_bp10_beurer_capture_is_rejected_by_a_strict_parse():
    with pytest.raises(ParseError, match="reserved flag bits"):
        parse_blood_pressure(h(BP10))


def test_bp10_beurer_capture_with_its_quirk():
    assert parse_blood_pressure(h(BP10), quirks=frozenset({"beurer_bm85"})) == Measurement(
        characteristic="2a35",
        kind="blood_pressure",
        values=bp(106.0, 71.0, None, pulse=63.0),
        device_time=datetime(2026, 8, 11, 18, 31),
        flags=(),
        patient_reading=True,
        extra={"user_id": 0},
    )


def beurer(systolic, diastolic, pulse, user, when):
    return Measurement(
        characteristic="2a35",
        kind="blood_pressure",
        values=bp(systolic, diastolic, None, pulse=pulse),
        device_time=when,
        flags=(),
        patient_reading=True,
        extra={"user_id": user},
    )


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        (  # BPMFL "decodes beurer sample data of the second user"
            "56 71 00 49 00 00 00 EA 07 08 0B 14 38 00 00 41 01 00 00",
            beurer(113.0, 73.0, 65.0, 1, datetime(2026, 8, 11, 20, 56)),
        ),
        (  # BPMFL "... of the second user with a high pulse"
            "56 77 00 46 00 00 00 EA 07 08 0B 14 39 00 00 57 01 00 40",
            beurer(119.0, 70.0, 87.0, 1, datetime(2026, 8, 11, 20, 57)),
        ),
    ],
)
def test_more_beurer_captures(vector, expected):
    assert parse_blood_pressure(h(vector), quirks=frozenset({"beurer_bm85"})) == expected
    with pytest.raises(ParseError):
        parse_blood_pressure(h(vector))


def test_unknown_quirks_change_nothing():
    with pytest.raises(ParseError):
        parse_blood_pressure(h(BP10), quirks=frozenset({"some_other_device"}))


def test_kpa_with_unknown_user_and_special_values():
    # derived: kPa, pulse NRes, user 0xFF, MAP +INF
    assert parse_blood_pressure(h("0D 8C F0 4E F0 FE 07 00 08 FF")) == Measurement(
        characteristic="2a35",
        kind="blood_pressure",
        values={
            "systolic": Quantity(14.0, "kPa"),
            "diastolic": Quantity(7.8, "kPa"),
            "mean_arterial": Quantity(None, "kPa"),
            "pulse": Quantity(None, "/min"),
        },
        device_time=None,
        flags=("value_nres", "value_positive_infinity"),
        patient_reading=True,
        extra={"user_id": None},
    )


def test_all_nan_is_not_a_patient_reading():
    assert parse_blood_pressure(h("00 FF 07 FF 07 FF 07")) == Measurement(
        characteristic="2a35",
        kind="blood_pressure",
        values=bp(None, None, None),
        device_time=None,
        flags=("no_value", "value_nan"),
        patient_reading=False,
        extra={},
    )


def test_bp12_intermediate_cuff_pressure():
    assert parse_intermediate_cuff_pressure(
        h("1E 04 00 00 00 00 00 00 00 04 11 14 29 3B 3C 00 01 27 00")
    ) == Measurement(
        characteristic="2a36",
        kind="intermediate_cuff_pressure",
        values={"cuff_pressure": Quantity(4.0, MMHG), "pulse": Quantity(60.0, "/min")},
        device_time=None,
        flags=(
            "body_movement",
            "cuff_too_loose",
            "device_time_incomplete",
            "improper_position",
            "intermediate",
            "irregular_pulse",
        ),
        patient_reading=False,
        extra={**PARTS_0_04_17_20_41_59, "user_id": 1},
    )


def test_bp13_intermediate_cuff_pressure_kpa():
    assert parse_intermediate_cuff_pressure(h("15 6F F0 00 00 00 00 3C 00 12 00")) == Measurement(
        characteristic="2a36",
        kind="intermediate_cuff_pressure",
        values={"cuff_pressure": Quantity(11.1, "kPa"), "pulse": Quantity(60.0, "/min")},
        device_time=None,
        flags=("cuff_too_loose", "intermediate", "pulse_rate_below_range"),
        patient_reading=False,
        extra={},
    )


def test_intermediate_cuff_pressure_accepts_nan_in_the_unused_slots():
    assert parse_intermediate_cuff_pressure(h("00 6F F0 FF 07 FF 07")) == Measurement(
        characteristic="2a36",
        kind="intermediate_cuff_pressure",
        values={"cuff_pressure": Quantity(11.1, MMHG)},
        device_time=None,
        flags=("intermediate",),
        patient_reading=False,
        extra={},
    )


def test_feature():
    assert parse_blood_pressure_feature(h("FF 01")) == BloodPressureFeature(
        supported=(
            "body_movement_detection",
            "cuff_fit_detection",
            "e2e_crc",
            "irregular_pulse_detection",
            "measurement_position_detection",
            "multiple_bonds",
            "pulse_rate_range_detection",
            "user_data_service",
            "user_facing_time",
        )
    )
    assert parse_blood_pressure_feature(h("00 00")) == BloodPressureFeature(supported=())
    with pytest.raises(ParseError):
        parse_blood_pressure_feature(h("00"))
