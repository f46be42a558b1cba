"""The hub's typed errors. Adapters translate third-party exceptions into these at the boundary."""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose."""

    retryable = False


class ConfigError(HubError):
    """The configuration is missing, malformed or holds a placeholder; the message says which."""


class RetryableHubError(HubError):
    """A transient failure (radio, link, busy database): the caller may try again later."""

    retryable = True
