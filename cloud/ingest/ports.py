"""The pipeline's ports for real: the hub registry and loader in PostgreSQL, the archive in S3.

Every call borrows a pooled connection for as long as it runs, so a connection PostgreSQL closed
(a restart, a terminated backend) costs one `DatabaseUnavailable` and the pool replaces it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloud.db import (
    find_batch,
    get_hub,
    pooled,
    quarantine_batch,
    reject_batch,
    store_batch,
)

if TYPE_CHECKING:
    from datetime import datetime
    from uuid import UUID

    from psycopg_pool import ConnectionPool

    from cloud.db import DecidedBatch, Hub, StoreResult
    from cloud.storage.archive import Archive
    from wire.envelope import Header
    from wire.items import Body

DB_TIMEOUT_S = 5.0
"""Seconds to wait for a pooled connection before calling PostgreSQL unavailable."""


class StoragePorts:
    """`IngestPorts` over a psycopg pool of autocommit connections and an `Archive`."""

    def __init__(
        self, pool: ConnectionPool, archive: Archive, *, db_timeout: float = DB_TIMEOUT_S
    ) -> None:
        self._pool = pool
        self._archive = archive
        self._timeout = db_timeout

    def hub(self, hub_id: str) -> Hub | None:
        """The registered hub, or None."""
        with pooled(self._pool, timeout=self._timeout) as conn:
            return get_hub(conn, hub_id)

    def decided(self, batch_id: UUID) -> DecidedBatch | None:
        """The earlier decision on `batch_id`, or None."""
        with pooled(self._pool, timeout=self._timeout) as conn:
            return find_batch(conn, batch_id)

    def archive(self, hub_id: str, batch_id: UUID, data: bytes) -> str:
        """`Archive.put_raw`."""
        return self._archive.put_raw(hub_id, batch_id, data)

    def quarantine_object(self, hub_id: str | None, data: bytes, received_at: datetime) -> str:
        """`Archive.put_quarantine`."""
        return self._archive.put_quarantine(hub_id, data, received_at)

    def store(
        self, header: Header, body: Body, *, s3_key: str, received_at: datetime, size: int
    ) -> StoreResult:
        """`store_batch`, committed when it returns."""
        with pooled(self._pool, timeout=self._timeout) as conn:
            return store_batch(
                conn, header, body, s3_key=s3_key, received_at=received_at, size=size
            )

    def reject(
        self, header: Header, *, reason: str, s3_key: str, size: int, received_at: datetime
    ) -> bool:
        """`reject_batch`."""
        with pooled(self._pool, timeout=self._timeout) as conn:
            return reject_batch(
                conn, header, reason=reason, s3_key=s3_key, size=size, received_at=received_at
            )

    def quarantine(
        self,
        *,
        hub_id: str | None,
        batch_id: UUID | None,
        reason: str,
        s3_key: str,
        size: int,
        received_at: datetime,
    ) -> int:
        """`quarantine_batch`."""
        with pooled(self._pool, timeout=self._timeout) as conn:
            return quarantine_batch(
                conn,
                hub_id=hub_id,
                batch_id=batch_id,
                reason=reason,
                s3_key=s3_key,
                size=size,
                received_at=received_at,
            )
