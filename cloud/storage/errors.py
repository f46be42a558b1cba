"""Storage errors; botocore exceptions never leave cloud/storage."""

from __future__ import annotations

from cloud.errors import CloudError, RetryableCloudError


class StorageError(CloudError):
    """Base of the archive's errors."""


class StorageUnavailable(StorageError, RetryableCloudError):
    """The object store cannot be reached or answered with a server error: try again later."""


class ArchiveConflict(StorageError):
    """An object exists under the key with different content; the archive never overwrites."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key
