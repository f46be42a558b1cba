from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire.errors import DecodeError
from wire.ids import uuid7, uuid7_time_ms


def test_uuid7_layout_rfc9562():
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    u = uuid7(now, bytes(10))
    assert u.version == 7
    assert u.variant == "specified in RFC 4122"
    assert uuid7_time_ms(u) == int(now.timestamp() * 1000)
    # 2026-11-28T12:00Z = 1795867200000 ms = 0x01A22206CA00; version nibble 7; variant bits 10.
    assert str(u) == "01a22206-ca00-7000-8000-000000000000"


@given(
    a=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    r=st.binary(min_size=10, max_size=10),
)
def test_uuid7_sorts_by_time(a, r):
    later = a + timedelta(milliseconds=1)
    assert uuid7(a, r) < uuid7(later, bytes(10))
    assert uuid7_time_ms(uuid7(a, r)) == int(a.timestamp() * 1000)


def test_uuid7_refuses_bad_inputs():
    with pytest.raises(ValueError, match="10 random bytes"):
        uuid7(datetime.now(UTC), b"")
    with pytest.raises(ValueError, match="aware"):
        uuid7(datetime(2026, 1, 1), bytes(10))
    with pytest.raises(DecodeError):
        uuid7_time_ms(UUID("00000000-0000-4000-8000-000000000000"))
