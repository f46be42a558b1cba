"""UUIDv7 (RFC 9562 section 5.7) from an explicit time and explicit random bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import RFC_4122, UUID

from wire.errors import DecodeError

if TYPE_CHECKING:
    from datetime import datetime

_RAND_BYTES = 10  # 74 random bits are used: 12 of rand_a and 62 of rand_b (RFC 9562 section 5.7)
_MAX_MS = (1 << 48) - 1
UUID_VERSION_7 = 7


def uuid7(now: datetime, rand: bytes) -> UUID:
    """Build a UUIDv7 whose 48-bit timestamp is `now` in Unix milliseconds; `rand` is 10 bytes."""
    if len(rand) != _RAND_BYTES:
        raise ValueError(f"uuid7 needs {_RAND_BYTES} random bytes, got {len(rand)}")
    if now.tzinfo is None:
        raise ValueError("uuid7 needs an aware datetime")
    ms = int(now.timestamp() * 1000)
    if not 0 <= ms <= _MAX_MS:
        raise ValueError(f"time {now.isoformat()} does not fit a UUIDv7")
    r = int.from_bytes(rand, "big")
    rand_a = (r >> 68) & 0xFFF
    rand_b = r & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return UUID(int=value)


def uuid7_time_ms(value: UUID) -> int:
    """The Unix-millisecond timestamp inside a UUIDv7, or `DecodeError` if it is not one."""
    if value.variant != RFC_4122 or value.version != UUID_VERSION_7:
        raise DecodeError(f"{value} is not a UUIDv7")
    return value.int >> 80
