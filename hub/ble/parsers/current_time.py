"""Current Time Service: Current Time 0x2A2B (parse and build), Local Time Information 0x2A0F."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from hub.ble.parsers._codec import Reader, bit_names, check_input, check_length
from hub.ble.parsers.date_time import DateTime, build_date_time, read_date_time
from hub.ble.parsers.errors import ParseError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

CURRENT_TIME = "2a2b"
LOCAL_TIME_INFORMATION = "2a0f"
CURRENT_TIME_LEN = 10
"""GSS "Current Time": Date Time 7, day of week, fractions256, adjust reason."""
LOCAL_TIME_INFORMATION_LEN = 2

# GSS "Day of Week": 1 = Monday ... 7 = Sunday, 0 = unknown.
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# GSS "Current Time", Adjust Reason bits 0-3; bits 4-7 are reserved.
ADJUST_REASONS = {
    0: "manual_time_update",
    1: "external_reference_time_update",
    2: "change_of_time_zone",
    3: "change_of_dst",
}
_ADJUST_BITS = {name: bit for bit, name in ADJUST_REASONS.items()}
# GSS "Time Zone": sint8 in 15-minute steps, -48..+56, -128 = unknown.
_TZ_UNKNOWN = -128
_TZ_MIN, _TZ_MAX = -48, 56
_TZ_STEP_MINUTES = 15
# GSS "DST Offset": 0 standard, 2 +0.5 h, 4 +1 h, 8 +2 h, 255 unknown.
_DST_MINUTES = {0: 0, 2: 30, 4: 60, 8: 120}
_DST_UNKNOWN = 255


@dataclass(frozen=True, slots=True)
class CurrentTime:
    """A Current Time value: the device's wall clock and why it was last adjusted."""

    characteristic: ClassVar[str] = CURRENT_TIME
    kind: ClassVar[str] = "current_time"

    date_time: DateTime
    day_of_week: str | None
    """``monday`` ... ``sunday``; None when the device does not know."""
    fractions256: int
    """Fractions of a second in 1/256 s."""
    adjust_reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LocalTimeInformation:
    """The device's time zone and daylight-saving offset; None when unknown."""

    characteristic: ClassVar[str] = LOCAL_TIME_INFORMATION
    kind: ClassVar[str] = "local_time_information"

    time_zone_minutes: int | None
    dst_offset_minutes: int | None


def parse_current_time(data: bytes, *, quirks: frozenset[str] = frozenset()) -> CurrentTime:  # noqa: ARG001 - every parser takes quirks
    """Parse a Current Time (0x2A2B) value: exactly 10 bytes."""
    data = check_input(data, CURRENT_TIME)
    check_length(data, CURRENT_TIME_LEN, CURRENT_TIME)
    reader = Reader(data, CURRENT_TIME)
    stamp = read_date_time(reader, CURRENT_TIME)
    day_of_week = reader.u8("day of week")
    fractions = reader.u8("fractions256")
    adjust = reader.u8("adjust reason")
    if day_of_week > len(_DAYS):
        raise ParseError(CURRENT_TIME, f"day of week {day_of_week} outside 1..7 (0 = unknown)")
    return CurrentTime(
        date_time=stamp,
        day_of_week=_DAYS[day_of_week - 1] if day_of_week else None,
        fractions256=fractions,
        adjust_reasons=bit_names(adjust, ADJUST_REASONS),
    )


def build_current_time(
    when: datetime, *, adjust_reasons: Iterable[str] = ("manual_time_update",)
) -> bytes:
    """Encode `when`'s wall-clock fields as the Current Time value a hub writes to a device.

    Raises:
        ValueError: the year cannot be carried, or an adjust reason is not one of ADJUST_REASONS.
    """
    adjust = 0
    for reason in adjust_reasons:
        if reason not in _ADJUST_BITS:
            raise ValueError(f"unknown adjust reason {reason!r}")
        adjust |= 1 << _ADJUST_BITS[reason]
    fractions = when.microsecond * 256 // 1_000_000
    return build_date_time(when) + bytes((when.isoweekday(), fractions, adjust))


def parse_local_time_information(
    data: bytes,
    *,
    quirks: frozenset[str] = frozenset(),  # noqa: ARG001 - every parser takes quirks
) -> LocalTimeInformation:
    """Parse a Local Time Information (0x2A0F) value: exactly 2 bytes."""
    data = check_input(data, LOCAL_TIME_INFORMATION)
    check_length(data, LOCAL_TIME_INFORMATION_LEN, LOCAL_TIME_INFORMATION)
    zone = int.from_bytes(data[:1], "little", signed=True)
    dst = data[1]
    if zone != _TZ_UNKNOWN and not _TZ_MIN <= zone <= _TZ_MAX:
        raise ParseError(
            LOCAL_TIME_INFORMATION, f"time zone {zone} outside -48..56 (-128 = unknown)"
        )
    if dst != _DST_UNKNOWN and dst not in _DST_MINUTES:
        raise ParseError(LOCAL_TIME_INFORMATION, f"DST offset {dst} is reserved")
    return LocalTimeInformation(
        time_zone_minutes=None if zone == _TZ_UNKNOWN else zone * _TZ_STEP_MINUTES,
        dst_offset_minutes=_DST_MINUTES.get(dst),
    )
