"""The readings cursor: what the hub makes round-trips; anything else is only `BadCursor`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.api.cursor import MAX_SKIP, BadCursor, Cursor, decode_cursor, next_cursor

T = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@given(
    since=st.datetimes(timezones=st.just(UTC)),
    skip=st.integers(min_value=1, max_value=MAX_SKIP),
)
def test_a_cursor_round_trips(since, skip):
    assert decode_cursor(Cursor(since, skip).encode()) == Cursor(since, skip)


@given(st.text(max_size=300))
def test_any_text_decodes_or_raises_bad_cursor(text):
    try:
        cursor = decode_cursor(text)
    except BadCursor:
        return
    assert cursor.since.tzinfo is UTC
    assert 0 < cursor.skip <= MAX_SKIP


@pytest.mark.parametrize(
    ("received", "previous", "more", "expected"),
    [
        ([T, T + timedelta(seconds=1)], None, True, Cursor(T + timedelta(seconds=1), 1)),
        ([T, T, T], None, True, Cursor(T, 3)),
        ([T, T], Cursor(T, 3), True, Cursor(T, 5)),  # a page inside one long tie
        ([T, T + timedelta(seconds=1)], Cursor(T, 3), True, Cursor(T + timedelta(seconds=1), 1)),
        ([T], None, False, None),
        ([], Cursor(T, 1), True, None),
    ],
)
def test_the_next_cursor_counts_ties_at_the_boundary(received, previous, more, expected):
    assert next_cursor(received, previous=previous, more=more) == expected
