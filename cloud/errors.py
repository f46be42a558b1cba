"""The cloud's typed errors. Adapters translate third-party exceptions into these."""

from __future__ import annotations


class CloudError(Exception):
    """Base of every error the cloud raises on purpose."""

    retryable = False


class ConfigError(CloudError):
    """The configuration is missing, malformed or holds a placeholder; the message says which."""


class RetryableCloudError(CloudError):
    """A transient failure (database, broker, object store): try again later."""

    retryable = True
