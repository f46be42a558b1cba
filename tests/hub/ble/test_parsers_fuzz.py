import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.ble.parsers import (
    KNOWN_QUIRKS,
    PARSERS,
    Measurement,
    ParseError,
    parse,
    to_json_dict,
)
from hub.ble.parsers.values import NON_PATIENT_FLAGS

CHARACTERISTICS = sorted(PARSERS)
QUIRK_SETS = st.sampled_from([frozenset(), frozenset(KNOWN_QUIRKS)])

# A valid flags byte plus a tail of plausible length reaches the deep branches more often than
# random bytes do: the date validation, specials, every optional field.
flagged = st.builds(
    lambda flags, tail: bytes([flags]) + tail,
    st.integers(0, 0xFF),
    st.binary(min_size=0, max_size=24),
)
# A valid Date Time inside otherwise random bytes.
date_time = st.builds(
    lambda y, mo, d, hh, mm, ss: y.to_bytes(2, "little") + bytes((mo, d, hh, mm, ss)),
    st.sampled_from([0, 1582, 2024, 9999]),
    st.integers(0, 12),
    st.integers(0, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)
sfloat = st.sampled_from([b"\xff\x07", b"\x00\x08", b"\xfe\x07", b"\x02\x08", b"\x01\x08"]) | (
    st.binary(min_size=2, max_size=2)
)


def check(characteristic: str, data: bytes, quirks: frozenset[str]) -> None:
    try:
        result = parse(characteristic, data, quirks=quirks)
    except ParseError as exc:
        error: ParseError | None = exc
    else:
        error = None
    if error is not None:
        assert error.reason
        assert error.characteristic == characteristic
        return
    rendered = to_json_dict(result)
    json.dumps(rendered, allow_nan=False)  # never NaN or infinity, never an unknown type
    if isinstance(result, Measurement):
        assert result.flags == tuple(sorted(set(result.flags)))
        assert result.patient_reading == (
            not set(result.flags) & NON_PATIENT_FLAGS
            and any(q.value is not None for q in result.values.values())
        )


@pytest.mark.parametrize("characteristic", CHARACTERISTICS)
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64), quirks=QUIRK_SETS)
def test_any_bytes_give_a_result_or_a_parse_error(characteristic, data, quirks):
    check(characteristic, data, quirks)


@pytest.mark.parametrize("characteristic", CHARACTERISTICS)
@settings(max_examples=300, deadline=None)
@given(data=flagged, quirks=QUIRK_SETS)
def test_flags_and_a_random_tail(characteristic, data, quirks):
    check(characteristic, data, quirks)


@pytest.mark.parametrize("characteristic", ["2a35", "2a36", "2a5e"])
@settings(max_examples=300, deadline=None)
@given(
    head=st.builds(
        lambda flags, values: bytes([flags]) + b"".join(values),
        st.integers(0, 0xFF),
        st.lists(sfloat, min_size=2, max_size=3),
    ),
    stamp=date_time,
    tail=st.binary(max_size=8),
    quirks=QUIRK_SETS,
)
def test_time_stamped_measurements(characteristic, head, stamp, tail, quirks):
    check(characteristic, head + stamp + tail, quirks)


@settings(max_examples=500, deadline=None)
@given(
    flags=st.integers(0, 0xFF),
    seq=st.binary(min_size=2, max_size=2),
    stamp=date_time,
    tail=st.binary(max_size=8),
)
def test_glucose_with_valid_base_time(flags, seq, stamp, tail):
    check("2a18", bytes([flags]) + seq + stamp + tail, frozenset())


@settings(max_examples=300, deadline=None)
@given(flags=st.integers(0, 0xFF), value=st.binary(min_size=4, max_size=4), stamp=date_time)
def test_temperature_with_valid_time(flags, value, stamp):
    check("2a1c", bytes([flags]) + value + stamp + b"\x02", frozenset())
    check("2a1c", bytes([flags]) + value + stamp, frozenset())


@settings(max_examples=300, deadline=None)
@given(stamp=date_time, tail=st.binary(min_size=3, max_size=3))
def test_current_time_with_valid_date(stamp, tail):
    check("2a2b", stamp + tail, frozenset())
