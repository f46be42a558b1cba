import pytest

from hub.ble.parsers._codec import Special, decode_float, decode_sfloat


def sfloat(hex_bytes: str) -> float | Special:
    return decode_sfloat(int.from_bytes(bytes.fromhex(hex_bytes), "little"))


def float32(hex_bytes: str) -> float | Special:
    return decode_float(int.from_bytes(bytes.fromhex(hex_bytes), "little"))


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("65 F0", 10.1),  # F1
        ("E8 F3", 100.0),  # F2
        ("FF 07", Special.NAN),  # F4
        ("00 08", Special.NRES),  # F5
        ("FE 07", Special.POSITIVE_INFINITY),  # F6
        ("02 08", Special.NEGATIVE_INFINITY),  # F7
        ("01 08", Special.RESERVED),  # F8
        ("72 00", 114.0),  # F9
        ("F6 FF", -1.0),  # F10
        # derived: the 12-bit mantissa and 4-bit exponent are two's complement, never biased
        ("78 F1", 37.6),
        ("0A F0", 1.0),
        ("FF F7", 204.7),  # mantissa 2047 with a non-zero exponent is a number
        ("00 F8", -204.8),
        ("01 70", 1e7),
        ("01 80", 1e-8),
        ("00 00", 0.0),
    ],
)
def test_sfloat(vector, expected):
    assert sfloat(vector) == expected


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("01 00 00 00", 1.0),  # F12
        ("FF FF 7F 00", Special.NAN),  # F13
        ("00 00 80 00", Special.NRES),  # F14
        ("FE FF 7F 00", Special.POSITIVE_INFINITY),  # F15
        ("02 00 80 00", Special.NEGATIVE_INFINITY),  # F16
        ("01 00 80 00", Special.RESERVED),  # F17
        ("72 01 00 FF", 37.0),  # F18
        ("B0 0E 00 FE", 37.6),
        ("7B EF FF FD", -4.229),
        ("01 02 03 04", 1971210000.0),
        ("01 00 00 80", 1e-128),
        ("FF FF 7F 7F", 8388607e127),
    ],
)
def test_float(vector, expected):
    assert float32(vector) == expected


def test_the_wrong_biased_encoding_is_not_one():
    # vectors.md warning 1: 0A 70 and 72 01 00 7F are a biased library's 1.0 and 37.0
    assert sfloat("0A 70") == 1e8
    assert float32("72 01 00 7F") == 370e127


def test_decimals_print_as_sent():
    assert repr(sfloat("78 F1")) == "37.6"
    assert repr(float32("03 00 00 FE")) == "0.03"
