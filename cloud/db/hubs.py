"""The hub registry: which hubs may send batches, with which keys, and whether they are revoked.

The ingestor looks up a hub's identity key here (`get_hub`) before verifying a batch's signature;
operators add and revoke hubs with `tecsa-cloud hubs`. Keys are stored raw (32 bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime  # noqa: TC003 - class_row builds Hub from the annotations at run time
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from psycopg.rows import class_row

from cloud.db.connection import translated
from cloud.db.errors import HubExists, InvalidHub, UnknownHub
from wire.errors import InvalidTopic
from wire.keys import fingerprint, key_id, raw_public
from wire.topics import validate_hub_id

if TYPE_CHECKING:
    import psycopg

_Key = TypeVar("_Key", Ed25519PublicKey, X25519PublicKey)
_COLUMNS = (
    "hub_id, identity_key, identity_key_id, exchange_key, status, created_at, revoked_at, "
    "revoke_reason, note"
)


@dataclass(frozen=True, slots=True)
class Hub:
    """A registered hub."""

    hub_id: str
    identity_key: bytes
    """Raw Ed25519 public key: verifies the hub's batches."""
    identity_key_id: str
    """Its key id, as batch headers carry it (`hub_key`)."""
    exchange_key: bytes | None
    """Raw X25519 public key: the cloud seals commands to it (later); None until known."""
    status: Literal["active", "revoked"]
    created_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None
    note: str | None

    @property
    def active(self) -> bool:
        """True unless revoked: only an active hub's batches are stored."""
        return self.status == "active"

    def identity_public_key(self) -> Ed25519PublicKey:
        """The identity key as `wire.open_sealed` wants it."""
        return Ed25519PublicKey.from_public_bytes(self.identity_key)

    @property
    def fingerprint(self) -> str:
        """All 64 hex digits of the identity key's SHA-256: what technicians compare."""
        return fingerprint(self.identity_public_key())


def add_hub(
    conn: psycopg.Connection[Any],
    hub_id: str,
    identity_key: Ed25519PublicKey | bytes,
    *,
    exchange_key: X25519PublicKey | bytes | None = None,
    note: str | None = None,
) -> tuple[Hub, bool]:
    """Register a hub; return it and whether this call added it.

    Adding the same hub with the same keys again changes nothing (returns False). Raises
    `HubExists` for the hub id with other keys, for a revoked hub, or for a key another hub
    holds; `InvalidHub` for a bad hub id or key.
    """
    hub_id = _hub_id(hub_id)
    identity = _public(identity_key, Ed25519PublicKey, "identity")
    exchange = None if exchange_key is None else _public(exchange_key, X25519PublicKey, "exchange")
    identity_raw = raw_public(identity)
    exchange_raw = None if exchange is None else raw_public(exchange)
    with translated(), conn.transaction(), conn.cursor(row_factory=class_row(Hub)) as cur:
        cur.execute(
            f"""
            INSERT INTO hubs (hub_id, identity_key, identity_key_id, exchange_key, note)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT DO NOTHING
            RETURNING {_COLUMNS}
            """,  # noqa: S608 - _COLUMNS is a constant of this module
            (hub_id, identity_raw, key_id(identity), exchange_raw, note),
        )
        added = cur.fetchone()
        if added is not None:
            return added, True
        cur.execute(f"SELECT {_COLUMNS} FROM hubs WHERE hub_id = %s", (hub_id,))  # noqa: S608
        existing = cur.fetchone()
        if existing is None:
            cur.execute(
                f"SELECT {_COLUMNS} FROM hubs WHERE identity_key = %s",  # noqa: S608
                (identity_raw,),
            )
            holder = cur.fetchone()
            other = holder.hub_id if holder else "another hub"
            raise HubExists(
                f"this identity key is registered to hub {other!r} already; every hub has its "
                "own key",
                hub_id=hub_id,
            )
    if existing.identity_key != identity_raw:
        raise HubExists(
            f"hub {hub_id!r} is registered with another identity key "
            f"({existing.identity_key_id}); revoke it and enroll the hub under a new id",
            hub_id=hub_id,
        )
    if exchange_raw is not None and existing.exchange_key != exchange_raw:
        raise HubExists(f"hub {hub_id!r} is registered with another exchange key", hub_id=hub_id)
    if not existing.active:
        raise HubExists(
            f"hub {hub_id!r} was revoked; a revoked hub is never re-activated, enroll it under a "
            "new id with new keys",
            hub_id=hub_id,
        )
    return existing, False


def get_hub(conn: psycopg.Connection[Any], hub_id: str) -> Hub | None:
    """The hub registered under `hub_id`, revoked or not; None when there is none."""
    with translated(), conn.cursor(row_factory=class_row(Hub)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM hubs WHERE hub_id = %s", (hub_id,))  # noqa: S608
        return cur.fetchone()


def list_hubs(conn: psycopg.Connection[Any]) -> list[Hub]:
    """Every registered hub, by hub id."""
    with translated(), conn.cursor(row_factory=class_row(Hub)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM hubs ORDER BY hub_id")  # noqa: S608
        return cur.fetchall()


def revoke_hub(conn: psycopg.Connection[Any], hub_id: str, *, reason: str | None = None) -> Hub:
    """Revoke a hub: from now on its batches are quarantined. Revoking twice keeps the first.

    Raises `UnknownHub` when no such hub is registered.
    """
    with translated(), conn.transaction(), conn.cursor(row_factory=class_row(Hub)) as cur:
        cur.execute(
            f"""
            UPDATE hubs SET status = 'revoked', revoked_at = now(), revoke_reason = %s
            WHERE hub_id = %s AND status = 'active'
            RETURNING {_COLUMNS}
            """,  # noqa: S608 - _COLUMNS is a constant of this module
            (reason, hub_id),
        )
        revoked = cur.fetchone()
        if revoked is not None:
            return revoked
        cur.execute(f"SELECT {_COLUMNS} FROM hubs WHERE hub_id = %s", (hub_id,))  # noqa: S608
        existing = cur.fetchone()
    if existing is None:
        raise UnknownHub(hub_id)
    return existing


def _hub_id(hub_id: str) -> str:
    try:
        return validate_hub_id(hub_id)
    except InvalidTopic as exc:
        raise InvalidHub(str(exc)) from None


def _public(key: _Key | bytes, kind: type[_Key], label: str) -> _Key:
    if isinstance(key, kind):
        return key
    if not isinstance(key, bytes):
        raise InvalidHub(f"the {label} key must be an {kind.__name__} or 32 raw bytes")
    try:
        return kind.from_public_bytes(key)
    except ValueError as exc:
        raise InvalidHub(f"the {label} key is not a raw {kind.__name__}: {exc}") from None
