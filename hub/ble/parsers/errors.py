"""The typed errors of the GATT parsers; nothing else escapes a parser, whatever the bytes."""

from __future__ import annotations

from hub.errors import HubError


class ParseError(HubError):
    """The bytes are not a valid value of the characteristic; reading them again will not help.

    Attributes:
        characteristic: the 16-bit UUID as four lowercase hex digits (``"2a35"``), or the spelling
            the caller gave when it names no supported characteristic.
        reason: what is wrong, in words a technician can act on.
    """

    def __init__(self, characteristic: str, reason: str) -> None:
        super().__init__(f"{characteristic}: {reason}")
        self.characteristic = characteristic
        self.reason = reason


class UnknownCharacteristic(ParseError):
    """The UUID is malformed, or names a characteristic that no parser here decodes."""
