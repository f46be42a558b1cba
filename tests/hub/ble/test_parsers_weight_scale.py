from datetime import datetime

import pytest

from hub.ble.parsers import Measurement, ParseError, Quantity, WeightScaleFeature
from hub.ble.parsers.weight_scale import parse_weight, parse_weight_scale_feature


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def weight(values, *, device_time=None, flags=(), patient=True, extra=None):
    return Measurement(
        characteristic="2a9d",
        kind="body_weight",
        values=values,
        device_time=device_time,
        flags=flags,
        patient_reading=patient,
        extra=extra or {},
    )


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        (  # W2
            "02 40 33 EA 07 08 16 08 2B 0B",
            weight({"weight": Quantity(65.6, "kg")}, device_time=datetime(2026, 8, 22, 8, 43, 11)),
        ),
        (  # W5: measurement unsuccessful, never 655.35 lb
            "01 FF FF",
            weight(
                {"weight": Quantity(None, "[lb_av]")},
                flags=("measurement_unsuccessful", "no_value"),
                patient=False,
            ),
        ),
        ("04 00 00 FF", weight({"weight": Quantity(0.0, "kg")}, extra={"user_id": None})),  # W6
        (  # W7: BMI 6553.5 and height 65.535 m are nobody's
            "08 00 00 FF FF FF FF",
            weight(
                {
                    "weight": Quantity(0.0, "kg"),
                    "bmi": Quantity(None, "kg/m2"),
                    "height": Quantity(None, "m"),
                },
                flags=("bmi_implausible", "height_implausible"),
            ),
        ),
        (  # SI with user 3, BMI 22.4 and height 1.75 m: 68.6 kg = 13720 x 0.005
            "0C 98 35 03 E0 00 D6 06",
            weight(
                {
                    "weight": Quantity(68.6, "kg"),
                    "bmi": Quantity(22.4, "kg/m2"),
                    "height": Quantity(1.75, "m"),
                },
                extra={"user_id": 3},
            ),
        ),
        (  # imperial: 151.25 lb, BMI 22.4, height 69.0 in
            "09 15 3B E0 00 B2 02",
            weight(
                {
                    "weight": Quantity(151.25, "[lb_av]"),
                    "bmi": Quantity(22.4, "kg/m2"),
                    "height": Quantity(69.0, "[in_i]"),
                },
            ),
        ),
        (  # unsuccessful keeps its time stamp and user
            "07 FF FF EA 07 08 16 08 2B 0B 01",
            weight(
                {"weight": Quantity(None, "[lb_av]")},
                device_time=datetime(2026, 8, 22, 8, 43, 11),
                flags=("measurement_unsuccessful", "no_value"),
                patient=False,
                extra={"user_id": 1},
            ),
        ),
    ],
)
def test_weight(vector, expected):
    assert parse_weight(h(vector)) == expected


@pytest.mark.parametrize(
    "vector",
    [
        "00 40",
        "00 40 33 00",
        "02 40 33 EA 07 08 16 08 2B",
        "08 40 33 E0 00",
        "10 40 33",  # reserved flag bit 4 (not "height present")
        "08 FF FF E0 00 D6 06",  # unsuccessful must not carry BMI/height
    ],
)
def test_invalid(vector):
    with pytest.raises(ParseError):
        parse_weight(h(vector))


def test_feature():
    # timestamp, multiple users, BMI; weight resolution 7 (0.005 kg), height resolution 3
    raw = 0b111 | 7 << 3 | 3 << 7
    assert parse_weight_scale_feature(raw.to_bytes(4, "little")) == WeightScaleFeature(
        timestamp_supported=True,
        multiple_users_supported=True,
        bmi_supported=True,
        weight_resolution_kg=0.005,
        weight_resolution_lb=0.01,
        height_resolution_m=0.001,
        height_resolution_in=0.1,
    )
    assert parse_weight_scale_feature(h("00 00 00 00")) == WeightScaleFeature(
        timestamp_supported=False,
        multiple_users_supported=False,
        bmi_supported=False,
        weight_resolution_kg=None,
        weight_resolution_lb=None,
        height_resolution_m=None,
        height_resolution_in=None,
    )
    with pytest.raises(ParseError):
        parse_weight_scale_feature(h("00 00 00"))
