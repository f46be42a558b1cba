"""What the cloud last sent each hub, and the per-hub cooldown of automatic re-sends.

Migration 0006 (`command_pushes`). Read by `cloud.commands.sync` when a hub's up/status shows
it is behind; see docs/commands.md ("Catching up").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloud.db.connection import translated

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    import psycopg


@dataclass(frozen=True, slots=True)
class CloudVersions:
    """What the cloud holds as current for one hub (None: nothing was ever sent)."""

    revocations: int | None
    """The newest revocation list version signed for any hub."""
    plans: int | None
    """The version of the plans snapshot last signed for this hub."""
    plans_snapshot: dict[str, Any] | None
    """That snapshot (`wire.plans.PlanSnapshot` as JSON)."""
    model: str | None
    """The model version of the latest rollout to this hub (or to every hub)."""


def cloud_versions(conn: psycopg.Connection[Any], hub_id: str) -> CloudVersions:
    """The revocation list, plans and model the cloud considers current for `hub_id`."""
    with translated():
        revocations = conn.execute(
            "SELECT max(version) FROM hub_commands WHERE kind = 'revocations'"
        ).fetchone()
        plans = conn.execute(
            "SELECT version, plans FROM hub_plans WHERE hub_id = %s", (hub_id,)
        ).fetchone()
        model = conn.execute(
            "SELECT version FROM model_rollouts WHERE hub_id = %s OR hub_id IS NULL"
            " ORDER BY requested_at DESC, id DESC LIMIT 1",
            (hub_id,),
        ).fetchone()
    return CloudVersions(
        revocations=None if revocations is None or revocations[0] is None else int(revocations[0]),
        plans=None if plans is None else int(plans[0]),
        plans_snapshot=None if plans is None else dict(plans[1]),
        model=None if model is None else str(model[0]),
    )


def claim_push(
    conn: psycopg.Connection[Any],
    hub_id: str,
    kind: str,
    *,
    now: datetime,
    cooldown: timedelta,
) -> bool:
    """Claim the right to re-send `kind` to `hub_id` now; False within `cooldown` of a claim.

    One atomic upsert: of concurrent callers (N ingestors), exactly one gets True.
    """
    with translated():
        row = conn.execute(
            "INSERT INTO command_pushes (hub_id, kind, pushed_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (hub_id, kind) DO UPDATE"
            " SET pushed_at = excluded.pushed_at, pushes = command_pushes.pushes + 1"
            " WHERE command_pushes.pushed_at <= excluded.pushed_at - %s"
            " RETURNING pushes",
            (hub_id, kind, now, cooldown),
        ).fetchone()
    return row is not None


def push_claims(conn: psycopg.Connection[Any], hub_id: str) -> dict[str, tuple[datetime, int]]:
    """Map kind -> (last re-send, re-sends so far) for `hub_id` (for operators and tests)."""
    with translated():
        rows = conn.execute(
            "SELECT kind, pushed_at, pushes FROM command_pushes WHERE hub_id = %s", (hub_id,)
        ).fetchall()
    return {row[0]: (row[1], int(row[2])) for row in rows}
