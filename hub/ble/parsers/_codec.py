"""Bounded little-endian reads, IEEE-11073 numbers and bit-field names shared by the parsers."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from hub.ble.parsers.errors import ParseError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

MAX_VALUE_LEN = 512
"""Core Specification 5.4, Vol 3, Part F, 3.2.9: an attribute value is at most 512 octets."""


class Special(StrEnum):
    """The IEEE-11073-20601 special values (FLOAT-Type, SFLOAT-Type): they are never numbers."""

    NAN = "nan"
    NRES = "nres"
    POSITIVE_INFINITY = "positive_infinity"
    NEGATIVE_INFINITY = "negative_infinity"
    RESERVED = "reserved"


# IEEE 11073-20601 SFLOAT-Type: the whole 16-bit word, exponent 0.
_SFLOAT_SPECIALS = {
    0x07FF: Special.NAN,
    0x0800: Special.NRES,
    0x07FE: Special.POSITIVE_INFINITY,
    0x0802: Special.NEGATIVE_INFINITY,
    0x0801: Special.RESERVED,
}
# IEEE 11073-20601 FLOAT-Type: the whole 32-bit word, exponent 0.
_FLOAT_SPECIALS = {
    0x007FFFFF: Special.NAN,
    0x00800000: Special.NRES,
    0x007FFFFE: Special.POSITIVE_INFINITY,
    0x00800002: Special.NEGATIVE_INFINITY,
    0x00800001: Special.RESERVED,
}

Number = float | Special
"""A decoded IEEE-11073 value: a finite float, or the special value the device sent."""


def scaled(mantissa: int, exponent: int) -> float:
    """Return mantissa * 10**exponent as the float nearest the exact decimal: 37.6, not 37.599…."""
    return float(Decimal(mantissa).scaleb(exponent))


def decode_sfloat(raw: int, shift: int = 0) -> Number:
    """Decode a 16-bit SFLOAT word (4-bit exponent, 12-bit mantissa), scaled by 10**shift.

    Both parts are two's complement, never biased. `shift` converts units exactly, in decimal:
    kg/L to mg/dL is a shift of 5.
    """
    special = _SFLOAT_SPECIALS.get(raw)
    if special is not None:
        return special
    return scaled(_signed(raw & 0x0FFF, 12), _signed(raw >> 12, 4) + shift)


def decode_float(raw: int) -> Number:
    """Decode a 32-bit FLOAT word: 8-bit two's-complement exponent, 24-bit mantissa."""
    special = _FLOAT_SPECIALS.get(raw)
    if special is not None:
        return special
    return scaled(_signed(raw & 0x00FF_FFFF, 24), _signed(raw >> 24, 8))


def _signed(value: int, bits: int) -> int:
    """Read the low `bits` bits of `value` as two's complement."""
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


def bit_names(value: int, names: Mapping[int, str]) -> tuple[str, ...]:
    """Return the names of the set bits that `names` knows (bit index → name), sorted."""
    return tuple(sorted(name for bit, name in names.items() if value >> bit & 1))


def bits_mask(bits: Iterable[int]) -> int:
    """Return the mask with the given bit indices set."""
    mask = 0
    for bit in bits:
        mask |= 1 << bit
    return mask


class Reader:
    """Reads little-endian fields from one value; every read is bounds-checked."""

    __slots__ = ("_characteristic", "_data", "_pos")

    def __init__(self, data: bytes, characteristic: str) -> None:
        self._data = data
        self._characteristic = characteristic
        self._pos = 0

    @property
    def remaining(self) -> int:
        """Number of bytes not read yet."""
        return len(self._data) - self._pos

    def take(self, size: int, field: str) -> bytes:
        """Return the next `size` bytes; raise ParseError naming `field` when they are missing."""
        if size > self.remaining:
            raise ParseError(
                self._characteristic,
                f"{field} needs {size} byte(s) at offset {self._pos}, only {self.remaining} left",
            )
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def uint(self, size: int, field: str) -> int:
        """Read an unsigned little-endian integer of `size` bytes."""
        return int.from_bytes(self.take(size, field), "little")

    def u8(self, field: str) -> int:
        """Read a uint8."""
        return self.uint(1, field)

    def u16(self, field: str) -> int:
        """Read a little-endian uint16."""
        return self.uint(2, field)

    def s16(self, field: str) -> int:
        """Read a little-endian sint16."""
        return int.from_bytes(self.take(2, field), "little", signed=True)

    def sfloat(self, field: str) -> Number:
        """Read a little-endian SFLOAT."""
        return decode_sfloat(self.u16(field))

    def float32(self, field: str) -> Number:
        """Read a little-endian FLOAT."""
        return decode_float(self.uint(4, field))

    def expect_end(self) -> None:
        """Raise ParseError when bytes remain that the flags did not declare."""
        if self.remaining:
            raise ParseError(
                self._characteristic,
                f"{self.remaining} undeclared trailing byte(s) at offset {self._pos}",
            )


def check_input(data: object, characteristic: str) -> bytes:
    """Return `data` as bytes, refusing non-bytes and values longer than an attribute can be."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ParseError(characteristic, f"expected bytes, got {type(data).__name__}")
    value = bytes(data)
    if len(value) > MAX_VALUE_LEN:
        raise ParseError(
            characteristic, f"{len(value)} bytes exceed the {MAX_VALUE_LEN}-byte attribute limit"
        )
    return value


def check_length(data: bytes, expected: int, characteristic: str, flags: int | None = None) -> None:
    """Raise ParseError unless `data` is exactly as long as its layout (and flags) declare."""
    if len(data) != expected:
        declared = "the layout declares" if flags is None else f"flags 0x{flags:02x} declare"
        raise ParseError(characteristic, f"{declared} {expected} bytes, got {len(data)}")


def check_reserved(flags: int, reserved_mask: int, characteristic: str) -> None:
    """Raise ParseError when a reserved (RFU) flag bit is set: what it would mean is unknown."""
    if flags & reserved_mask:
        raise ParseError(
            characteristic,
            f"reserved flag bits 0x{flags & reserved_mask:02x} are set (flags 0x{flags:02x})",
        )


def read_flags(
    data: object,
    characteristic: str,
    *,
    reserved: int,
    min_len: int,
    optional: tuple[tuple[int, int], ...],
) -> tuple[Reader, int]:
    """Open a flag-driven value: a reader past its flags byte, and the flags.

    Checks the input, refuses reserved flag bits, and refuses any length other than `min_len`
    plus the sizes of the fields the flags declare; `optional` pairs a flag bit with the size in
    bytes of the field it adds.
    """
    raw = check_input(data, characteristic)
    reader = Reader(raw, characteristic)
    flags = reader.u8("flags")
    check_reserved(flags, reserved, characteristic)
    expected = min_len + sum(size for bit, size in optional if flags & bit)
    check_length(raw, expected, characteristic, flags)
    return reader, flags
