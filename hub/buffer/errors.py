"""Typed errors of the hub buffer; no `sqlite3` exception ever leaves the package.

Callers branch on the class: `BufferFull` (answer 507, pause BLE downloads, retry later),
`BufferBusy` (retry soon), `BufferClosed` (the daemon is stopping), the encounter errors (bad input,
answer 4xx), `SchemaTooNew` / `NotABuffer` / `BufferCorrupt` (an operator must look at the file).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.errors import HubError, RetryableHubError

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path


class HubBufferError(HubError):
    """Base of every error the buffer raises.

    Named `HubBufferError` rather than `BufferError` so it never shadows the Python builtin of that
    name (a forgotten import would then silently catch the wrong class).
    """


class BufferFull(HubBufferError, RetryableHubError):
    """Unsent readings reached the configured cap; nothing of this write was stored."""

    def __init__(
        self, message: str, *, unsent_bytes: int | None = None, max_unsent_bytes: int | None = None
    ) -> None:
        super().__init__(message)
        self.unsent_bytes = unsent_bytes
        self.max_unsent_bytes = max_unsent_bytes


class DiskFull(BufferFull):
    """The disk holding the buffer file is full (SQLITE_FULL); nothing of this write was stored."""


class BufferBusy(HubBufferError, RetryableHubError):
    """The database stayed locked by another process beyond the busy timeout; try again."""


class BufferClosed(HubBufferError):
    """The buffer was closed (the daemon is stopping); the write was not accepted."""


class StorageError(HubBufferError):
    """SQLite could not read or write the file (I/O error, read-only file, cannot open)."""

    def __init__(self, message: str, *, sqlite_error: str | None = None) -> None:
        super().__init__(message)
        self.sqlite_error = sqlite_error
        """SQLite's name for the failure, such as `SQLITE_IOERR_WRITE`, when there was one."""


class BufferCorrupt(StorageError):
    """The file is damaged or is not an SQLite database; restore it or move it aside."""


class BufferNotFound(HubBufferError):
    """A read-only command was pointed at a buffer file that does not exist."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"no hub buffer at {path}: check --db (the daemon creates the file on its first start)"
        )
        self.path = path


class SchemaTooNew(HubBufferError):
    """The file was migrated by a newer hub release; this release refuses to touch it."""

    def __init__(self, path: Path, *, found: int, known: int) -> None:
        super().__init__(
            f"{path} has buffer schema version {found}, but this hub release knows only up to "
            f"{known}: upgrade the hub software (downgrades are not supported)"
        )
        self.path = path
        self.found = found
        self.known = known


class SchemaTooOld(HubBufferError):
    """A read-only tool met a file the daemon has not migrated yet (after a software upgrade)."""

    def __init__(self, path: Path, *, found: int, known: int) -> None:
        super().__init__(
            f"{path} has buffer schema version {found}, this hub release reads version {known}: "
            "start the hub daemon once (tecsa-hub run, or restart the service), it migrates the "
            "file on start; then run this command again"
        )
        self.path = path
        self.found = found
        self.known = known


class NotABuffer(HubBufferError):
    """The file is an SQLite database of some other application; the buffer will not adopt it."""


class EncounterError(HubBufferError):
    """Base of the errors about encounters: the request was refused, nothing changed."""


class EncounterOverlap(EncounterError):
    """The new or changed encounter overlaps another one of the same device."""

    def __init__(self, message: str, *, device_address: str, existing_id: str) -> None:
        super().__init__(message)
        self.device_address = device_address
        self.existing_id = existing_id


class InvalidEncounter(EncounterError):
    """The encounter's times make no sense (it would end before it starts)."""


class UnknownEncounter(EncounterError):
    """No encounter has this id."""


class EncounterAlreadyEnded(EncounterError):
    """The encounter was ended already; an ended encounter is never reopened or moved."""


class NotYourEncounter(EncounterError):
    """Another agent opened this encounter: only they, or a supervisor, may end it."""


class BatchConflict(HubBufferError):
    """A batch named readings that are delivered or in another batch already; nothing recorded."""


class BatchNotSealed(HubBufferError):
    """The sealing function given to `record_batch` failed; nothing was recorded."""


class UnknownDevice(HubBufferError):
    """No device with this address is registered; call `device_seen` first."""


# SQLite primary result codes (https://www.sqlite.org/rescode.html); extended codes keep the
# primary code in their low byte.
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_FULL = 13
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def translate(exc: sqlite3.Error, doing: str) -> HubBufferError:
    """The buffer's typed error for an `sqlite3` exception raised while `doing` something."""
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", None)
    primary = code & 0xFF if isinstance(code, int) else None
    detail = f"{doing}: {exc}"
    if primary in {_SQLITE_BUSY, _SQLITE_LOCKED}:
        return BufferBusy(f"{detail} (another process holds the database; try again)")
    if primary == _SQLITE_FULL:
        return DiskFull(f"{detail} (the disk is full: free space or lower the retention)")
    if primary in {_SQLITE_CORRUPT, _SQLITE_NOTADB}:
        return BufferCorrupt(f"{detail} (the file is damaged)", sqlite_error=name)
    return StorageError(detail, sqlite_error=name)
