"""Typed errors of the uplink; no paho or aiomqtt exception leaves the package.

`UplinkUnavailable` (the broker cannot be reached or the link dropped: retried with backoff),
`UplinkRefused` (the broker refused this hub: credentials or ACL; retried slowly, an operator
must look), `UplinkConfigError` (TLS files or URL unusable: fix the configuration).
"""

from __future__ import annotations

from hub.errors import ConfigError, HubError, RetryableHubError


class UplinkError(HubError):
    """Base of every error the uplink raises."""


class UplinkUnavailable(UplinkError, RetryableHubError):
    """The broker could not be reached, or the connection to it was lost."""

    def __init__(self, message: str, *, broker: str) -> None:
        super().__init__(message)
        self.broker = broker


class UplinkTimeout(UplinkUnavailable):
    """The broker did not answer in time (CONNACK, SUBACK or PUBACK)."""


class UplinkRefused(UplinkError, RetryableHubError):
    """The broker refused the connection (bad credentials, not authorised, bad client id)."""

    def __init__(self, message: str, *, broker: str, code: int | None = None) -> None:
        super().__init__(message)
        self.broker = broker
        self.code = code


class UplinkConfigError(UplinkError, ConfigError):
    """The uplink's configuration cannot work (broker URL, TLS files); the message says which."""
