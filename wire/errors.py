"""The typed errors of the wire contract; nothing else escapes a decoder."""

from __future__ import annotations


class WireError(Exception):
    """Base of every error raised by `wire`: a caller that catches it has caught them all."""

    retryable = False


class DecodeError(WireError):
    """The bytes are not a well-formed value of the expected kind; resending will not help."""


class UnsupportedVersion(DecodeError):
    """The bytes name a format version this code does not speak."""

    def __init__(self, message: str, *, version: int | str) -> None:
        super().__init__(message)
        self.version = version


class IntegrityError(WireError):
    """A signature or an authentication tag does not verify: forged, corrupted or the wrong key."""


class TooLarge(DecodeError):
    """An input, or what it would expand to, exceeds a configured cap; refused before the work."""

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class InvalidTopic(WireError):
    """A topic or topic segment (such as a hub id) is not valid in the contract."""


class KeyFileError(WireError):
    """A key file is missing, unreadable, of the wrong type or too widely readable."""


class Misdirected(IntegrityError):
    """Signed and valid, but addressed to another hub: never act on someone else's message."""

    def __init__(self, message: str, *, addressed_to: str, expected: str) -> None:
        super().__init__(message)
        self.addressed_to = addressed_to
        self.expected = expected


class Expired(WireError):
    """Signed and valid, but past its expiry: too old to act on (a replay or a late delivery)."""
