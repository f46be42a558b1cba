"""Issuing an agent's token: sign it (wire.tokens) and record it so that it can be revoked."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from cloud.db.agents import record_token
from wire.tokens import Role, issue

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    import psycopg
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def issue_agent_token(
    conn: psycopg.Connection[Any],
    key: Ed25519PrivateKey,
    *,
    agent_id: str,
    role: Role,
    now: datetime,
    lifetime: timedelta,
) -> str:
    """A signed token for `agent_id`, recorded (by id) in the registry first."""
    token_id = secrets.token_hex(12)
    token = issue(key, agent_id=agent_id, role=role, now=now, lifetime=lifetime, token_id=token_id)
    record_token(
        conn,
        token_id=token_id,
        agent_id=agent_id,
        role=role.value,
        issued_at=now,
        expires_at=now + lifetime,
    )
    return token
