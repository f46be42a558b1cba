"""Typed errors of the cloud's PostgreSQL layer; no psycopg exception ever leaves `cloud.db`.

Callers branch on the class: `DatabaseUnavailable` and `DatabaseConflict` are retryable (do not
ack, try the batch again later); `SchemaError` and its subclasses need an operator (`tecsa-cloud db
upgrade`, or a newer release); the hub registry errors are bad input from a person or a hub.
"""

from __future__ import annotations

from cloud.errors import CloudError, RetryableCloudError


class DatabaseError(CloudError):
    """Base of every error the database layer raises; the message says what failed."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        """PostgreSQL's SQLSTATE code of the underlying failure, when the server sent one."""


class DatabaseUnavailable(DatabaseError, RetryableCloudError):
    """PostgreSQL cannot be reached, closed the connection or is shutting down: retry later."""


class DatabaseConflict(DatabaseError, RetryableCloudError):
    """A serialization failure or deadlock rolled the transaction back: run it again."""


class DataRefused(DatabaseError):
    """PostgreSQL refused the values themselves (a constraint, a NUL in text): never retry them.

    For a batch this means quarantine: the same bytes will be refused again.
    """


class SchemaError(DatabaseError):
    """The database schema is missing, older or newer than this release expects."""


class MigrationChecksumMismatch(SchemaError):
    """A migration that was applied has changed since: applied migrations are immutable."""

    def __init__(self, *, version: int, name: str, recorded: str, actual: str) -> None:
        super().__init__(
            f"migration {version:04d}_{name} was applied with sha256 {recorded[:12]}…, but the "
            f"file now has {actual[:12]}…: applied migrations must never be edited; "
            "add a new migration instead"
        )
        self.version = version
        self.name = name
        self.recorded = recorded
        self.actual = actual


class SchemaTooNew(SchemaError):
    """The database was migrated by a newer release; this one refuses to touch it."""

    def __init__(self, *, found: int, known: int) -> None:
        super().__init__(
            f"the database has schema version {found}, but this release knows only up to "
            f"{known}: upgrade tecsa-cloud (downgrades are not supported)"
        )
        self.found = found
        self.known = known


class HubRegistryError(CloudError):
    """Base of the hub registry's refusals: bad input from an operator or a hub."""


class UnknownHub(HubRegistryError):
    """No hub with this id is registered."""

    def __init__(self, hub_id: str) -> None:
        super().__init__(f"no hub {hub_id!r} is registered (see: tecsa-cloud hubs list)")
        self.hub_id = hub_id


class HubExists(HubRegistryError):
    """The hub id or its key is registered already, with different keys or to another hub."""

    def __init__(self, message: str, *, hub_id: str) -> None:
        super().__init__(message)
        self.hub_id = hub_id


class InvalidHub(HubRegistryError):
    """A hub id that is not a DNS label, or a public key that is not 32 raw bytes of its kind."""
