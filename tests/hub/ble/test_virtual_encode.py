"""The virtual devices' encoders reproduce vectors.md byte for byte."""

import datetime as dt

import pytest

from hub.ble.virtual import encode
from hub.ble.virtual.encode import Special


def h(text: str) -> bytes:
    return bytes.fromhex(text)


@pytest.mark.parametrize(
    ("value", "exponent", "expected"),
    [
        (10.1, -1, "65 F0"),  # F1
        (100.0, -1, "E8 F3"),  # F2
        (Special.NAN, None, "FF 07"),  # F4
        (Special.NRES, None, "00 08"),  # F5
        (Special.POSITIVE_INFINITY, None, "FE 07"),  # F6
        (Special.NEGATIVE_INFINITY, None, "02 08"),  # F7
        (Special.RESERVED, None, "01 08"),  # F8
        (114, 0, "72 00"),  # F9
        (-1.0, -1, "F6 FF"),  # F10
        (float("nan"), None, "FF 07"),
        (float("inf"), None, "FE 07"),
        (float("-inf"), None, "02 08"),
    ],
)
def test_sfloat_vectors(value, exponent, expected):
    assert encode.sfloat(value, exponent) == h(expected)


@pytest.mark.parametrize(
    ("value", "mantissa", "exponent"),
    [
        (123.45, 1235, -1),
        (0.12344, 1234, -4),
        (10000000, 1000, 4),
        (1000400, 1000, 3),
        (1000500, 1001, 3),
    ],
)
def test_sfloat_rounds_half_up_to_the_smallest_exponent(value, mantissa, exponent):
    raw = int.from_bytes(encode.sfloat(value), "little")
    assert raw & 0x0FFF == mantissa
    assert raw >> 12 == exponent & 0x0F


def test_sfloat_refuses_values_it_cannot_carry():
    with pytest.raises(ValueError, match="does not fit"):
        encode.sfloat(5000, 0)


@pytest.mark.parametrize(
    ("value", "exponent", "expected"),
    [
        (1.0, 0, "01 00 00 00"),  # F12
        (Special.NAN, None, "FF FF 7F 00"),  # F13
        (Special.NRES, None, "00 00 80 00"),  # F14
        (Special.POSITIVE_INFINITY, None, "FE FF 7F 00"),  # F15
        (Special.NEGATIVE_INFINITY, None, "02 00 80 00"),  # F16
        (Special.RESERVED, None, "01 00 80 00"),  # F17
        (37.0, -1, "72 01 00 FF"),  # F18
    ],
)
def test_float_vectors(value, exponent, expected):
    assert encode.medfloat32(value, exponent) == h(expected)


def test_date_time_vectors():
    assert encode.date_time(dt.datetime(2018, 4, 17, 15, 51, 0)) == h("E2 07 04 11 0F 33 00")  # D1
    assert encode.date_time_fields(0, 0, 0, hours=18, minutes=26, seconds=32) == h(
        "00 00 00 00 12 1A 20"
    )  # D2


def test_blood_pressure_vectors():
    bp1 = encode.blood_pressure_measurement(
        138,
        88,
        120,
        timestamp=encode.date_time_fields(0, 4, 17, hours=20, minutes=41, seconds=59),
        pulse=60,
        user_id=1,
        status=0x27,
    )
    assert bp1 == h("1E 8A 00 58 00 78 00 00 00 04 11 14 29 3B 3C 00 01 27 00")
    bp3 = encode.blood_pressure_measurement(18.9, 11, 15.9, exponent=-1)
    assert bp3 == h("00 BD F0 6E F0 9F F0")  # 11.0 at e=-1; BP3 itself encodes 11 at e=0
    icp = encode.intermediate_cuff_pressure(
        4,
        unused=0,
        timestamp=encode.date_time_fields(0, 4, 17, hours=20, minutes=41, seconds=59),
        pulse=60,
        user_id=1,
        status=0x27,
    )
    assert icp == h("1E 04 00 00 00 00 00 00 00 04 11 14 29 3B 3C 00 01 27 00")  # BP12


def test_temperature_vectors():
    t1 = encode.temperature_measurement(
        37.60, timestamp=dt.datetime(2012, 12, 5, 11, 50, 27), temperature_type=4
    )
    assert t1 == h("06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04")
    assert encode.temperature_measurement(-4.229, temperature_type=9, exponent=-3) == h(
        "04 7B EF FF FD 09"
    )
    assert encode.temperature_measurement(98.6, fahrenheit=True, exponent=-1) == h(
        "01 DA 03 00 FF"
    )  # T7
    assert encode.temperature_measurement(Special.NAN) == h("00 FF FF 7F 00")  # T9


def test_heart_rate_vectors():
    assert encode.heart_rate_measurement(85) == h("00 55")  # H1
    assert encode.heart_rate_measurement(
        255, sensor_contact=encode.SENSOR_CONTACT_NOT_DETECTED
    ) == h("04 FF")
    assert encode.heart_rate_measurement(300, rr_intervals=(1024,)) == h("11 2C 01 00 04")


def test_pulse_oximeter_vectors():
    assert encode.plx_continuous(100.0, 90.0, exponent=-1) == h("00 E8 F3 84 F3")  # P1
    assert encode.plx_continuous(100, 90) == h("00 64 00 5A 00")  # P2
    p3 = encode.plx_continuous(
        95, 90, measurement_status=0x0020, device_sensor_status=0, pulse_amplitude_index=8.7
    )
    assert p3 == h("1C 5F 00 5A 00 20 00 00 00 00 57 F0")
    p6 = encode.plx_features(
        0x00A3, measurement_status_support=0x1040, device_sensor_status_support=0x000180
    )
    assert p6 == h("A3 00 40 10 80 01 00")
    assert encode.plx_spot_check(Special.NAN, Special.NAN, clock_not_set=True) == h(
        "10 FF 07 FF 07"
    )  # P7


def test_glucose_vector_g1():
    g1 = encode.glucose_measurement(
        1,
        dt.datetime(2019, 2, 27, 11, 10, 30),
        time_offset=-5,
        concentration=30.0,
        exponent=0,
        sample_type=2,
        sample_location=1,
        sensor_status=0x0105,
        context_follows=True,
    )
    assert g1 == h("1B 01 00 E3 07 02 1B 0B 0A 1E FB FF 1E 00 12 05 01")
    assert encode.glucose_measurement(7, dt.datetime(2025, 3, 14, 7, 30, 0)) == h(
        "00 07 00 E9 07 03 0E 07 1E 00"
    )


def test_racp_vectors():
    assert encode.racp_response(1, encode.RacpResponse.SUCCESS) == h("06 00 01 01")  # R5
    assert encode.racp_response(1, encode.RacpResponse.NO_RECORDS_FOUND) == h("06 00 01 06")  # R6
    assert encode.racp_response(0x0C, encode.RacpResponse.OP_CODE_NOT_SUPPORTED) == h("06 00 0C 02")
    assert encode.racp_number_of_records(258) == h("05 00 02 01")  # R9


def test_weight_vectors():
    w2 = encode.weight_measurement(65.6, timestamp=dt.datetime(2026, 8, 22, 8, 43, 11))
    assert w2 == h("02 40 33 EA 07 08 16 08 2B 0B")
    assert encode.weight_measurement(None, imperial=True) == h("01 FF FF")  # W5
    assert encode.weight_measurement(0, user_id=0xFF) == h("04 00 00 FF")  # W6


def test_current_time_vector_c3():
    value = dt.datetime(2024, 6, 6, 12, 4, 44, 15625)
    assert encode.current_time(value, adjust_reason=encode.ADJUST_MANUAL) == h(
        "E8 07 06 06 0C 04 2C 04 04 01"
    )
