"""The framing shared by the cloud's signed messages: acks, commands and model releases.

    magic    3 bytes  b"TS" + a letter per kind
    version  1 byte
    lengths  2 or 4 bytes each, big-endian: the parts that follow
    parts    the lengths' bytes
    sig      64 bytes Ed25519 by the cloud signing key over everything before it

`SignedFrame.split` checks, in this order and before any other work: the type, the size cap, the
minimum size, the magic, the version, the parts' own caps and that the declared lengths add up to
the size; each with
the kind's own words, so an error says what was refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wire.errors import DecodeError, TooLarge, UnsupportedVersion

if TYPE_CHECKING:
    import struct

SIGNATURE_LEN = 64  # Ed25519, RFC 8032 section 5.1.6


@dataclass(frozen=True, slots=True)
class SignedFrame:
    """One kind of signed message: its magic, version, length fields and size cap."""

    what: str
    """How errors name it: "ack", "command", "release"."""
    article: str
    magic: bytes
    version: int
    prefix: struct.Struct
    """magic, version, then one length per part (`>3sB` + `H` or `I` per part)."""
    limit: int
    malformed: type[DecodeError] = DecodeError
    title: str = ""
    """The name in "not a tecsa <title> (bad magic)"; `what` when empty."""
    mismatch_hint: str = ""
    part_caps: tuple[tuple[str, int], ...] = ()
    """(name, cap) of the leading parts that have a cap of their own, checked with the lengths."""

    def pack(self, *parts: bytes) -> bytes:
        """The signed part: prefix and parts (sign it and append the signature)."""
        return self.prefix.pack(self.magic, self.version, *map(len, parts)) + b"".join(parts)

    def split(self, data: bytes) -> tuple[bytes, bytes, tuple[int, ...]]:
        """(signed part, signature, lengths of the parts) of `data`, or the framing's error."""
        what = self.what
        if not isinstance(data, bytes | bytearray | memoryview):
            raise self.malformed(f"{self.article} {what} is bytes")
        if len(data) > self.limit:
            raise TooLarge(f"{what} is too large", size=len(data), limit=self.limit)
        if len(data) < self.prefix.size + 2 + SIGNATURE_LEN:
            raise self.malformed(f"{what} is {len(data)} bytes, too short")
        magic, version, *lengths = self.prefix.unpack_from(data)
        if magic != self.magic:
            raise self.malformed(f"not a tecsa {self.title or what} (bad magic)")
        if version != self.version:
            raise UnsupportedVersion(f"{what} version {version} is not supported", version=version)
        for (name, cap), length in zip(self.part_caps, lengths, strict=False):
            if length > cap:
                raise TooLarge(f"{name} is too large", size=length, limit=cap)
        if self.prefix.size + sum(lengths) + SIGNATURE_LEN != len(data):
            raise self.malformed(f"{what} length mismatch{self.mismatch_hint}")
        return bytes(data[:-SIGNATURE_LEN]), bytes(data[-SIGNATURE_LEN:]), tuple(lengths)
