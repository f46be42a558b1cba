"""Rebuild PostgreSQL from the S3 archive, the source of truth (DESIGN.md, delivery guarantee 6).

Every archived batch was verified and opened before it was archived, so replay opens it again
with the hub registry's key (revoked or not: a revoked hub's archived batches were accepted
before the revocation) and calls `store_batch`, which skips what is stored already. Running it
twice, or on a database that holds part of the archive, stores each item once. The hub registry
itself is not in the archive: enroll the hubs (`tecsa-cloud hubs add`) before replaying into a
new database.

A batch that cannot be replayed (its hub unknown, its bytes unreadable) is counted as failed and
the replay goes on; a transient failure (S3 or PostgreSQL unavailable) stops it, and running it
again resumes cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cloud.db import DataRefused, UnknownHub, get_hub, store_batch
from cloud.storage.errors import StorageError, StorageUnavailable
from cloud.storage.keys import raw_key
from wire.envelope import DEFAULT_LIMITS, Limits, open_sealed, peek_header
from wire.errors import WireError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from datetime import date

    import psycopg
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from cloud.db import Hub
    from cloud.storage.archive import Archive, ArchivedObject

MAX_FAILURES_KEPT = 100


@dataclass(slots=True)
class ReplaySummary:
    """What a replay did: batches scanned, stored now, stored before, and failed."""

    scanned: int = 0
    stored: int = 0
    duplicate: int = 0
    failed: int = 0
    readings_inserted: int = 0
    items_inserted: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(S3 key, reason) of the first `MAX_FAILURES_KEPT` failed batches."""

    def line(self) -> str:
        """One line for a terminal or a log."""
        return (
            f"scanned={self.scanned} stored={self.stored} duplicate={self.duplicate} "
            f"failed={self.failed} readings_inserted={self.readings_inserted}"
        )


def count_archived(archive: Archive, *, hub_id: str | None, since: date | None) -> int:
    """How many raw batches `replay_archive` would scan (for a progress bar)."""
    return sum(1 for _ in archive.iter_raw(hub_id, since))


def replay_archive(
    archive: Archive,
    conn: psycopg.Connection[Any],
    *,
    cloud_keys: X25519PrivateKey | Mapping[str, X25519PrivateKey],
    hub_id: str | None = None,
    since: date | None = None,
    limits: Limits = DEFAULT_LIMITS,
    on_batch: Callable[[ArchivedObject, str], None] | None = None,
) -> ReplaySummary:
    """Store every raw batch (of `hub_id`, dated on or after `since`) that is not stored yet.

    `conn` is an autocommit connection; `on_batch(object, status)` is called after each batch
    with "stored", "duplicate" or "failed". Raises `StorageUnavailable` or `DatabaseUnavailable`
    (retryable) when a service goes away: nothing is half-stored, run it again.
    """
    summary = ReplaySummary()
    hubs: dict[str, Hub | None] = {}
    objects: Iterable[ArchivedObject] = archive.iter_raw(hub_id, since)
    for obj in objects:
        summary.scanned += 1
        try:
            status = _replay_one(
                archive,
                conn,
                obj,
                hubs=hubs,
                cloud_keys=cloud_keys,
                limits=limits,
                summary=summary,
            )
        except (WireError, DataRefused, UnknownHub, _Unreplayable) as exc:
            status = "failed"
            summary.failed += 1
            if len(summary.failures) < MAX_FAILURES_KEPT:
                summary.failures.append((obj.key, str(exc)))
        if on_batch is not None:
            on_batch(obj, status)
    return summary


class _Unreplayable(Exception):
    """This archived object cannot be stored; the message says why."""


def _replay_one(
    archive: Archive,
    conn: psycopg.Connection[Any],
    obj: ArchivedObject,
    *,
    hubs: dict[str, Hub | None],
    cloud_keys: X25519PrivateKey | Mapping[str, X25519PrivateKey],
    limits: Limits,
    summary: ReplaySummary,
) -> str:
    try:
        data = archive.get(obj.key)
    except StorageUnavailable:
        raise
    except StorageError as exc:
        raise _Unreplayable(str(exc)) from exc
    header = peek_header(data, limits=limits)
    if raw_key(header.hub_id, header.batch_id) != obj.key:
        raise _Unreplayable("the object's key does not match the batch's header")
    if header.hub_id not in hubs:
        hubs[header.hub_id] = get_hub(conn, header.hub_id)
    hub = hubs[header.hub_id]
    if hub is None:
        raise _Unreplayable(f"hub {header.hub_id} is not registered (tecsa-cloud hubs add)")
    opened = open_sealed(
        data, hub_key=hub.identity_public_key(), cloud_keys=cloud_keys, limits=limits
    )
    result = store_batch(
        conn,
        opened.header,
        opened.body,
        s3_key=obj.key,
        received_at=obj.last_modified,
        size=len(data),
    )
    if result.status == "duplicate":
        summary.duplicate += 1
        return "duplicate"
    summary.stored += 1
    summary.readings_inserted += result.readings.inserted
    summary.items_inserted += result.inserted
    return "stored"
