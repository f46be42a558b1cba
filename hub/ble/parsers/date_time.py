"""Date Time 0x2A08: the 7-byte time stamp embedded in every measurement, parsed and built."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from hub.ble.parsers._codec import Reader, check_input, check_length
from hub.ble.parsers.errors import ParseError

if TYPE_CHECKING:
    from hub.ble.parsers.values import ExtraValue

DATE_TIME = "2a08"
DATE_TIME_LEN = 7
"""GATT Specification Supplement 3.70 (Date Time): year u16, month, day, hours, minutes, seconds."""
MIN_YEAR = 1582
MAX_YEAR = 9999
"""GSS "Date Time": year 1582..9999, 0 = not known."""
MAX_MONTH, MAX_DAY, MAX_HOURS, MAX_MINUTES, MAX_SECONDS = 12, 31, 23, 59, 59
"""GSS "Date Time": month 1..12, day 1..31 (0 = not known); hours 0..23; minutes, seconds 0..59."""
_LEAP_YEAR = 2000  # checks a day against its month when the year is unknown (29 February is fine)


@dataclass(frozen=True, slots=True)
class DateTime:
    """A device wall-clock time; None marks a date part the device does not know (sent as 0)."""

    characteristic: ClassVar[str] = DATE_TIME
    kind: ClassVar[str] = "date_time"

    year: int | None
    month: int | None
    day: int | None
    hours: int
    minutes: int
    seconds: int

    @property
    def value(self) -> datetime | None:
        """The naive datetime, or None when the year, month or day is unknown."""
        if self.year is None or self.month is None or self.day is None:
            return None
        return datetime(self.year, self.month, self.day, self.hours, self.minutes, self.seconds)  # noqa: DTZ001 - BLE carries device wall-clock time without a zone

    def parts(self, prefix: str) -> dict[str, ExtraValue]:
        """The six parts as `extra` entries named ``<prefix>_year`` ... ``<prefix>_second``."""
        return {
            f"{prefix}_year": self.year,
            f"{prefix}_month": self.month,
            f"{prefix}_day": self.day,
            f"{prefix}_hour": self.hours,
            f"{prefix}_minute": self.minutes,
            f"{prefix}_second": self.seconds,
        }


def read_date_time(reader: Reader, characteristic: str) -> DateTime:
    """Read and validate a 7-byte Date Time; an impossible date (month 13, 30 February) raises."""
    year = reader.u16("year")
    month = reader.u8("month")
    day = reader.u8("day")
    hours = reader.u8("hours")
    minutes = reader.u8("minutes")
    seconds = reader.u8("seconds")
    if year and not MIN_YEAR <= year <= MAX_YEAR:
        raise ParseError(
            characteristic, f"year {year} outside {MIN_YEAR}..{MAX_YEAR} (0 = unknown)"
        )
    if month > MAX_MONTH:
        raise ParseError(characteristic, f"month {month} outside 1..12 (0 = unknown)")
    if day:
        last = calendar.monthrange(year or _LEAP_YEAR, month)[1] if month else MAX_DAY
        if day > last:
            raise ParseError(characteristic, f"day {day} does not exist in month {month or '?'}")
    if hours > MAX_HOURS or minutes > MAX_MINUTES or seconds > MAX_SECONDS:
        raise ParseError(characteristic, f"time {hours}:{minutes}:{seconds} is not a time of day")
    return DateTime(year or None, month or None, day or None, hours, minutes, seconds)


def parse_date_time(data: bytes, *, quirks: frozenset[str] = frozenset()) -> DateTime:  # noqa: ARG001 - every parser takes quirks
    """Parse a Date Time (0x2A08) value: exactly 7 bytes."""
    data = check_input(data, DATE_TIME)
    check_length(data, DATE_TIME_LEN, DATE_TIME)
    return read_date_time(Reader(data, DATE_TIME), DATE_TIME)


def build_date_time(when: datetime) -> bytes:
    """Encode the wall-clock fields of `when` (its tzinfo is not applied) as a Date Time value.

    Raises:
        ValueError: the year is outside 1582..9999, which Date Time cannot carry.
    """
    if not MIN_YEAR <= when.year <= MAX_YEAR:
        raise ValueError(f"year {when.year} outside {MIN_YEAR}..{MAX_YEAR}")
    return when.year.to_bytes(2, "little") + bytes(
        (when.month, when.day, when.hour, when.minute, when.second)
    )


def timestamp(
    stamp: DateTime,
    characteristic: str,
    *,
    offset_minutes: int = 0,
) -> tuple[datetime | None, set[str], dict[str, ExtraValue]]:
    """Return (device_time, flags, extra) for a measurement's time stamp plus an offset.

    A stamp with an unknown date gives no device_time, the flag ``device_time_incomplete`` and
    its parts in `extra` (``device_time_year`` ...) so the known time of day is kept.
    """
    value = stamp.value
    if value is None:
        return None, {"device_time_incomplete"}, stamp.parts("device_time")
    try:
        return value + timedelta(minutes=offset_minutes), set(), {}
    except OverflowError as exc:
        raise ParseError(characteristic, "time offset moves the time out of range") from exc
