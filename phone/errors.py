"""What can go wrong while a phone syncs, named for what the app (or the agent) can do about it."""

from __future__ import annotations


class PhoneError(Exception):
    """Base of the phone client's errors; the message is safe to show to the agent."""


class Retryable(PhoneError):
    """Worth trying again later: the network, a busy or full hub."""


class NetworkError(Retryable):
    """The hub could not be reached, or the connection broke before its answer was read."""


class HubBusy(Retryable):
    """The hub answered 5xx; `status` is the HTTP status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class HubFull(Retryable):
    """The hub's storage is full (507): the records stay queued on the phone."""


class PinMismatch(PhoneError):
    """The hub presented a certificate other than the advertised one: nothing was sent."""

    def __init__(self, *, expected: str, got: str) -> None:
        super().__init__(
            f"the hub's certificate {got[:16]}... is not the advertised {expected[:16]}...: "
            "refusing to send records to it (report this to the health post)"
        )
        self.expected = expected
        self.got = got


class TokenRefused(PhoneError):
    """401: the token is missing, expired, forged or revoked; sync with the cloud for a new one."""


class HubNotFound(PhoneError):
    """No hub was discovered in time."""


class ProtocolError(PhoneError):
    """The hub's answer does not follow the API (wrong shape, or not one result per record)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class QueueError(PhoneError):
    """The local queue refused an operation (bad record input, unknown record)."""


class Forbidden(PhoneError):
    """403: the token is valid but its role may not sync records; the hub's answer is kept."""

    def __init__(self, message: str, *, answer: dict[str, object]) -> None:
        super().__init__(message)
        self.answer = answer


class TooLarge(PhoneError):
    """413: the request body is over the hub's cap; send fewer records per request."""
