"""Commands to hubs: snapshot versions, the revocation list with expiries, what was sent where.

Migration 0003. `next_version` is the one source of snapshot versions (revocations and plans),
so any snapshot signed later carries a higher version than any signed before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from cloud.db.connection import translated
from cloud.db.errors import HubRegistryError, UnknownHub
from cloud.db.hubs import get_hub, list_hubs

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime
    from uuid import UUID

    import psycopg


class HubNotActive(HubRegistryError):
    """The hub is revoked: nothing is sent to it any more."""

    def __init__(self, hub_id: str) -> None:
        super().__init__(f"hub {hub_id!r} is revoked; commands are not sent to revoked hubs")
        self.hub_id = hub_id


def target_hubs(conn: psycopg.Connection[Any], hub_id: str | None) -> list[str]:
    """`[hub_id]` if it is registered and active; every active hub when `hub_id` is None."""
    if hub_id is None:
        return [hub.hub_id for hub in list_hubs(conn) if hub.active]
    hub = get_hub(conn, hub_id)
    if hub is None:
        raise UnknownHub(hub_id)
    if not hub.active:
        raise HubNotActive(hub_id)
    return [hub.hub_id]


def next_version(conn: psycopg.Connection[Any]) -> int:
    """A snapshot version higher than every one handed out before."""
    with translated():
        row = conn.execute("SELECT nextval('command_versions')").fetchone()
    assert row is not None  # noqa: S101 - nextval always returns a row
    return int(row[0])


def revocation_entries(
    conn: psycopg.Connection[Any], *, now: datetime
) -> list[tuple[str, datetime]]:
    """(token id, expiry) of every revoked token not expired at `now`, by token id."""
    with translated():
        rows = conn.execute(
            "SELECT token_id, expires_at FROM agent_tokens"
            " WHERE revoked_at IS NOT NULL AND expires_at > %s ORDER BY token_id",
            (now,),
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def record_commands(
    conn: psycopg.Connection[Any],
    commands: Iterable[tuple[UUID, str, str, int | None, datetime, datetime]],
) -> None:
    """Record signed commands (id, hub, kind, version, issued_at, expires_at) before sending."""
    with translated(), conn.transaction():
        conn.cursor().executemany(
            "INSERT INTO hub_commands (command_id, hub_id, kind, version, issued_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            list(commands),
        )


def mark_published(conn: psycopg.Connection[Any], ids: Iterable[UUID], *, at: datetime) -> None:
    """Record that the broker accepted these commands."""
    with translated():
        conn.execute(
            "UPDATE hub_commands SET published_at = %s WHERE command_id = ANY(%s)",
            (at, list(ids)),
        )


def save_plans(
    conn: psycopg.Connection[Any], hub_id: str, *, version: int, plans: dict[str, Any], at: datetime
) -> None:
    """Keep the plans snapshot last signed for `hub_id` (JSON), replacing the previous one."""
    with translated():
        conn.execute(
            "INSERT INTO hub_plans (hub_id, version, plans, updated_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (hub_id) DO UPDATE SET version = excluded.version,"
            " plans = excluded.plans, updated_at = excluded.updated_at",
            (hub_id, version, Jsonb(plans), at),
        )


def sent_commands(conn: psycopg.Connection[Any], hub_id: str) -> list[dict[str, Any]]:
    """The commands signed for a hub, newest first (for operators and tests)."""
    with translated():
        cur = conn.execute(
            "SELECT command_id, kind, version, issued_at, expires_at, published_at"
            " FROM hub_commands WHERE hub_id = %s ORDER BY issued_at DESC, version DESC",
            (hub_id,),
        )
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
