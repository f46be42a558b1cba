"""RFC 8785 (JCS): the bytes ECMAScript would produce, so that phones and hubs agree on hashes."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire.canonical import NotCanonicalizable, canonical, content_hash, es6_number


def test_rfc8785_section_3_2_2_example():
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": '\u20ac$\u000f\nA\'B"\\\\"/',
        "literals": [None, True, False],
    }
    assert canonical(value) == (
        b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        b'"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )


def test_rfc8785_section_3_2_3_sorting_by_utf16_code_units():
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (123456789012345680000.0, "123456789012345680000"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (9007199254740992.0, "9007199254740992"),
        (295147905179352830000.0, "295147905179352830000"),
        (4.35, "4.35"),
        (0.1, "0.1"),
        (-1.5, "-1.5"),
        (100.0, "100"),
    ],
)
def test_numbers_as_ecmascript_writes_them(number, text):
    assert es6_number(number) == text


@pytest.mark.parametrize("bad", [math.nan, math.inf, 10**400, {1: "x"}, {"x": object()}, b"bytes"])
def test_values_that_would_differ_between_platforms_are_refused(bad):
    with pytest.raises(NotCanonicalizable):
        canonical(bad if not isinstance(bad, float) else [bad])


def test_integers_are_written_as_their_double():
    assert canonical([31, 2**53, 2**53 + 1, 2**60]) == (
        b"[31,9007199254740992,9007199254740992,1152921504606847000]"
    )


def test_content_hash_is_order_independent_and_prefixed():
    a = content_hash({"weeks": 31, "notes": "oedème", "signs": []})
    b = content_hash({"signs": [], "notes": "oedème", "weeks": 31})
    assert a == b
    assert a.startswith("sha256:")
    assert len(a) == 7 + 64


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=15,
)  # fmt: skip


@given(json_values)
def test_canonical_bytes_parse_back_to_the_same_value_and_are_stable(value):
    first = canonical(value)
    assert canonical(json.loads(first)) == first
    assert _as_js(json.loads(first)) == _as_js(value)


def _as_js(value):
    """The value as JSON.parse would hold it: every number a double."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return [_as_js(v) for v in value]
    return {k: _as_js(v) for k, v in value.items()}
