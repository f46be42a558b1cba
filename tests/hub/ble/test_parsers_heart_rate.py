import pytest

from hub.ble.parsers import Measurement, ParseError, Quantity
from hub.ble.parsers.heart_rate import parse_heart_rate


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def heart_rate(values, contact, flags=()):
    return Measurement(
        characteristic="2a37",
        kind="heart_rate",
        values=values,
        device_time=None,
        flags=flags,
        patient_reading=True,
        extra={"sensor_contact": contact},
    )


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("00 55", heart_rate({"heart_rate": Quantity(85.0, "/min")}, "not_supported")),  # H1
        (  # H2
            "04 FF",
            heart_rate(
                {"heart_rate": Quantity(255.0, "/min")},
                "not_detected",
                ("sensor_contact_not_detected",),
            ),
        ),
        ("02 48", heart_rate({"heart_rate": Quantity(72.0, "/min")}, "not_supported")),
        ("07 2C 01", heart_rate({"heart_rate": Quantity(300.0, "/min")}, "detected")),  # u16
        (
            "0E 48 10 27",  # contact detected, energy expended 10000 kJ
            heart_rate(
                {"heart_rate": Quantity(72.0, "/min"), "energy_expended": Quantity(10000.0, "kJ")},
                "detected",
            ),
        ),
        (
            "1F 48 00 FF FF 00 04 00 03",  # u16 rate, energy saturated, two RR-intervals
            heart_rate(
                {
                    "heart_rate": Quantity(72.0, "/min"),
                    "energy_expended": Quantity(65535.0, "kJ"),
                    "rr_interval_1": Quantity(1.0, "s"),
                    "rr_interval_2": Quantity(0.75, "s"),
                },
                "detected",
            ),
        ),
        (
            "10 48 33 03",
            heart_rate(
                {"heart_rate": Quantity(72.0, "/min"), "rr_interval_1": Quantity(819 / 1024, "s")},
                "not_supported",
            ),
        ),
    ],
)
def test_heart_rate(vector, expected):
    assert parse_heart_rate(h(vector)) == expected


@pytest.mark.parametrize(
    "vector",
    [
        "17 01 01",  # H5: RR flagged, no RR bytes
        "",
        "00",
        "01 55",  # u16 rate cut short
        "00 55 00",  # trailing byte without RR flag
        "10 55 00 04 00",  # half an RR-interval
        "08 55 10",  # energy cut short
        "20 55",  # reserved flag bit
    ],
)
def test_invalid(vector):
    with pytest.raises(ParseError):
        parse_heart_rate(h(vector))
