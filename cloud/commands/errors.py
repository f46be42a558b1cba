"""Errors of sending commands to hubs."""

from __future__ import annotations

from cloud.errors import CloudError, RetryableCloudError


class BrokerUnavailable(RetryableCloudError):
    """The broker could not be reached or did not accept a command (it stays recorded)."""


class PlansFileError(CloudError):
    """A plans file is missing, not JSON, or a plan in it is invalid; the message says where."""
