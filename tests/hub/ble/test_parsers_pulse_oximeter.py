from datetime import datetime

import pytest

from hub.ble.parsers import Measurement, ParseError, PlxFeatures, Quantity
from hub.ble.parsers.pulse_oximeter import (
    parse_plx_continuous,
    parse_plx_features,
    parse_plx_spot_check,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def plx(kind, values, *, device_time=None, flags=(), patient=True, extra=None):
    return Measurement(
        characteristic="2a5e" if kind == "spo2_spot_check" else "2a5f",
        kind=kind,
        values=values,
        device_time=device_time,
        flags=flags,
        patient_reading=patient,
        extra=extra or {},
    )


SPO2_100_PR_90 = {"spo2": Quantity(100.0, "%"), "pulse": Quantity(90.0, "/min")}


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("00 E8 F3 84 F3", plx("spo2_continuous", SPO2_100_PR_90)),  # P1
        ("00 64 00 5A 00", plx("spo2_continuous", SPO2_100_PR_90)),  # P2
        (  # P3
            "1C 5F 00 5A 00 20 00 00 00 00 57 F0",
            plx(
                "spo2_continuous",
                {
                    "spo2": Quantity(95.0, "%"),
                    "pulse": Quantity(90.0, "/min"),
                    "pulse_amplitude_index": Quantity(8.7, "%"),
                },
                flags=("measurement_ongoing",),
            ),
        ),
        (  # fast and slow, device status: equipment malfunction + sensor disconnected
            "0B 61 00 48 00 60 00 49 00 62 00 47 00 02 80 00",
            plx(
                "spo2_continuous",
                {
                    "spo2": Quantity(97.0, "%"),
                    "pulse": Quantity(72.0, "/min"),
                    "spo2_fast": Quantity(96.0, "%"),
                    "pulse_fast": Quantity(73.0, "/min"),
                    "spo2_slow": Quantity(98.0, "%"),
                    "pulse_slow": Quantity(71.0, "/min"),
                },
                flags=("equipment_malfunction", "sensor_disconnected"),
            ),
        ),
        (  # status bit 11: data for testing
            "04 61 00 48 00 00 08",
            plx(
                "spo2_continuous",
                {"spo2": Quantity(97.0, "%"), "pulse": Quantity(72.0, "/min")},
                flags=("test_data",),
                patient=False,
            ),
        ),
    ],
)
def test_continuous(vector, expected):
    assert parse_plx_continuous(h(vector)) == expected


SPOT_97_72 = {"spo2": Quantity(97.0, "%"), "pulse": Quantity(72.0, "/min")}


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        (  # P7
            "10 FF 07 FF 07",
            plx(
                "spo2_spot_check",
                {"spo2": Quantity(None, "%"), "pulse": Quantity(None, "/min")},
                flags=("device_clock_not_set", "no_value", "value_nan"),
                patient=False,
            ),
        ),
        (
            "01 61 00 48 00 E9 07 03 0E 07 1E 00",
            plx("spo2_spot_check", SPOT_97_72, device_time=datetime(2025, 3, 14, 7, 30)),
        ),
        (  # clock not set: the time is kept aside, never trusted; the value is a reading
            "11 61 00 48 00 D0 07 01 01 00 05 00",
            plx(
                "spo2_spot_check",
                SPOT_97_72,
                flags=("device_clock_not_set",),
                extra={
                    "device_time_year": 2000,
                    "device_time_month": 1,
                    "device_time_day": 1,
                    "device_time_hour": 0,
                    "device_time_minute": 5,
                    "device_time_second": 0,
                },
            ),
        ),
        (  # every status and PAI: demo data (bit 10), storage (bit 9), low perfusion
            "0E 61 00 48 00 00 06 20 00 00 1E F0",
            plx(
                "spo2_spot_check",
                {**SPOT_97_72, "pulse_amplitude_index": Quantity(3.0, "%")},
                flags=("data_from_storage", "demo_data", "low_perfusion"),
                patient=False,
            ),
        ),
        (  # measurement unavailable (13), invalid (15), questionable (14)
            "02 61 00 48 00 00 E0",
            plx(
                "spo2_spot_check",
                SPOT_97_72,
                flags=(
                    "invalid_measurement",
                    "measurement_unavailable",
                    "questionable_measurement",
                ),
                patient=False,
            ),
        ),
        (
            "02 61 00 48 00 C0 01",  # validated, fully qualified, early estimate
            plx(
                "spo2_spot_check",
                SPOT_97_72,
                flags=("early_estimated_data", "fully_qualified_data", "validated_data"),
            ),
        ),
    ],
)
def test_spot_check(vector, expected):
    assert parse_plx_spot_check(h(vector)) == expected


@pytest.mark.parametrize(
    ("parser", "vector"),
    [
        (parse_plx_spot_check, "01 61 00 48 00"),  # timestamp missing
        (parse_plx_spot_check, "00 61 00 48"),
        (parse_plx_spot_check, "00 61 00 48 00 00"),
        (parse_plx_spot_check, "20 61 00 48 00"),  # reserved flag bit
        (parse_plx_spot_check, "04 61 00 48 00 00 00"),  # u24 status cut short
        (parse_plx_continuous, "01 61 00 48 00 60 00"),
        (parse_plx_continuous, "40 61 00 48 00"),
        (parse_plx_continuous, ""),
    ],
)
def test_invalid(parser, vector):
    with pytest.raises(ParseError):
        parser(h(vector))


def test_p6_features():
    assert parse_plx_features(h("A3 00 40 10 80 01 00")) == PlxFeatures(
        supported=(
            "device_and_sensor_status",
            "measurement_status",
            "multiple_bonds",
            "spo2pr_slow",
        ),
        measurement_status_support=("calibration_ongoing", "early_estimated_data"),
        device_and_sensor_status_support=("non_pulsatile_signal", "questionable_pulse"),
    )


def test_features_without_status_support():
    assert parse_plx_features(h("4C 00")) == PlxFeatures(
        supported=(
            "pulse_amplitude_index",
            "spot_check_measurement_storage",
            "spot_check_timestamp",
        ),
        measurement_status_support=None,
        device_and_sensor_status_support=None,
    )
    for bad in ("A3 00 40 10 80 01", "00 00 00", "01 00", "00"):
        with pytest.raises(ParseError):
            parse_plx_features(h(bad))
