from datetime import datetime

import pytest

from hub.ble.parsers import (
    CurrentTime,
    DateTime,
    LocalTimeInformation,
    ParseError,
    build_current_time,
    build_date_time,
)
from hub.ble.parsers.current_time import parse_current_time, parse_local_time_information
from hub.ble.parsers.date_time import parse_date_time


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_d1_date_time():
    result = parse_date_time(h("E2 07 04 11 0F 33 00"))
    assert result == DateTime(2018, 4, 17, 15, 51, 0)
    assert result.value == datetime(2018, 4, 17, 15, 51)


def test_d2_unknown_date_keeps_the_time_of_day():
    result = parse_date_time(h("00 00 00 00 12 1A 20"))
    assert result == DateTime(None, None, None, 18, 26, 32)
    assert result.value is None


@pytest.mark.parametrize(
    "vector",
    [
        "E2 07 04 11 0F 33",  # D3: too short
        "E2 07 04 11 0F 33 00 00",
        "E2 07 0D 11 0F 33 00",  # month 13
        "E2 07 02 1D 0F 33 00",  # 29 February 2018
        "00 00 02 1E 0F 33 00",  # 30 February, year unknown
        "00 00 00 20 0F 33 00",  # day 32, month unknown
        "E2 07 04 11 18 00 00",  # hour 24
        "E2 07 04 11 0F 3C 00",  # minute 60
        "E2 07 04 11 0F 33 3C",  # second 60
        "2D 06 04 11 0F 33 00",  # year 1581
        "10 27 04 11 0F 33 00",  # year 10000
    ],
)
def test_invalid_date_time(vector):
    with pytest.raises(ParseError):
        parse_date_time(h(vector))


def test_leap_day_with_unknown_year_is_fine():
    assert parse_date_time(h("00 00 02 1D 00 00 00")) == DateTime(None, 2, 29, 0, 0, 0)


def test_build_date_time():
    assert build_date_time(datetime(2018, 4, 17, 15, 51)) == h("E2 07 04 11 0F 33 00")
    with pytest.raises(ValueError, match="year"):
        build_date_time(datetime(1500, 1, 1))


def test_c1_current_time_all_unknown():
    assert parse_current_time(h("00 00 00 00 00 00 00 00 00 00")) == CurrentTime(
        date_time=DateTime(None, None, None, 0, 0, 0),
        day_of_week=None,
        fractions256=0,
        adjust_reasons=(),
    )


def test_c3_current_time_as_a_hub_writes_it():
    expected = CurrentTime(
        date_time=DateTime(2024, 6, 6, 12, 4, 44),
        day_of_week="thursday",
        fractions256=128,
        adjust_reasons=("manual_time_update",),
    )
    assert parse_current_time(h("E8 07 06 06 0C 04 2C 04 80 01")) == expected
    assert build_current_time(datetime(2024, 6, 6, 12, 4, 44, 500_000)) == h(
        "E8 07 06 06 0C 04 2C 04 80 01"
    )


def test_current_time_adjust_reasons_round_trip():
    reasons = ("change_of_dst", "change_of_time_zone", "external_reference_time_update")
    built = build_current_time(datetime(2025, 1, 5, 23, 59, 59), adjust_reasons=reasons)
    assert built == h("E9 07 01 05 17 3B 3B 07 00 0E")
    assert parse_current_time(built) == CurrentTime(
        DateTime(2025, 1, 5, 23, 59, 59), "sunday", 0, reasons
    )
    assert build_current_time(datetime(2025, 1, 5), adjust_reasons=())[-1] == 0
    with pytest.raises(ValueError, match="adjust reason"):
        build_current_time(datetime(2025, 1, 5), adjust_reasons=("daylight",))


@pytest.mark.parametrize(
    "vector",
    [
        "E8 07 06 06 0C 04 2C 04 80",
        "E8 07 06 06 0C 04 2C 04 80 01 00",
        "E8 07 06 06 0C 04 2C 08 80 01",  # day of week 8
        "E8 07 0D 06 0C 04 2C 04 80 01",
    ],
)
def test_invalid_current_time(vector):
    with pytest.raises(ParseError):
        parse_current_time(h(vector))


def test_local_time_information():
    assert parse_local_time_information(h("04 04")) == LocalTimeInformation(60, 60)
    assert parse_local_time_information(h("F4 00")) == LocalTimeInformation(-180, 0)
    assert parse_local_time_information(h("80 FF")) == LocalTimeInformation(None, None)
    for bad in ("04", "04 04 04", "39 00", "CF 00", "04 01"):
        with pytest.raises(ParseError):
            parse_local_time_information(h(bad))
