"""The registry of tokens issued to agents: record, revoke, and the revocation list for hubs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloud.db.connection import translated

if TYPE_CHECKING:
    from datetime import datetime

    import psycopg


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as the registry knows it (never the token string itself)."""

    token_id: str
    agent_id: str
    role: str
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    reason: str | None


def record_token(
    conn: psycopg.Connection[Any],
    *,
    token_id: str,
    agent_id: str,
    role: str,
    issued_at: datetime,
    expires_at: datetime,
) -> None:
    """Record an issued token (its id, not the token)."""
    with translated(), conn.transaction():
        conn.execute(
            "INSERT INTO agent_tokens (token_id, agent_id, role, issued_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (token_id, agent_id, role, issued_at, expires_at),
        )


def revoke_tokens(
    conn: psycopg.Connection[Any],
    *,
    now: datetime,
    token_id: str | None = None,
    agent_id: str | None = None,
    reason: str | None = None,
) -> list[str]:
    """Revoke one token, or every unexpired token of an agent; the ids newly revoked."""
    if (token_id is None) == (agent_id is None):
        raise ValueError("give a token id or an agent id")
    with translated(), conn.transaction():
        rows = conn.execute(
            "UPDATE agent_tokens SET revoked_at = %s, reason = %s"
            " WHERE revoked_at IS NULL AND expires_at > %s"
            " AND (token_id = %s OR agent_id = %s) RETURNING token_id",
            (now, reason, now, token_id, agent_id),
        ).fetchall()
    return sorted(row[0] for row in rows)


def revoked_token_ids(conn: psycopg.Connection[Any], *, now: datetime) -> list[str]:
    """The revocation list hubs need: revoked tokens that have not expired yet."""
    with translated():
        rows = conn.execute(
            "SELECT token_id FROM agent_tokens"
            " WHERE revoked_at IS NOT NULL AND expires_at > %s ORDER BY token_id",
            (now,),
        ).fetchall()
    return [row[0] for row in rows]


def agent_tokens(conn: psycopg.Connection[Any], agent_id: str) -> list[IssuedToken]:
    """Every token issued to an agent, newest first."""
    with translated():
        rows = conn.execute(
            "SELECT token_id, agent_id, role, issued_at, expires_at, revoked_at, reason"
            " FROM agent_tokens WHERE agent_id = %s ORDER BY issued_at DESC",
            (agent_id,),
        ).fetchall()
    return [IssuedToken(*row) for row in rows]
