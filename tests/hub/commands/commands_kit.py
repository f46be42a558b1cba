"""Helpers for the hub's command tests (imported by name: tests are not a package)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wire.commands import (
    CommandKind,
    ModelReleaseData,
    RevocationList,
    RevokedToken,
    new_command,
    sign_command,
)
from wire.plans import Plan, PlanKind, PlanSnapshot

CLOUD = Ed25519PrivateKey.from_private_bytes(bytes(range(129, 161)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(161, 193)))
NOW = datetime.now(UTC).replace(microsecond=0)
_ids = itertools.count(1)


def revocations(version: int, *jtis: str, days: int = 10) -> RevocationList:
    expiry = NOW + timedelta(days=days)
    return RevocationList(
        version=version, revoked=tuple(RevokedToken(jti=j, expires_at=expiry) for j in jtis)
    )


def plans(version: int, *ids: str) -> PlanSnapshot:
    return PlanSnapshot(
        version=version,
        plans=tuple(Plan(id=i, title=f"Plan {i}", kind=PlanKind.VISIT, starts_at=NOW) for i in ids),
    )


def signed(
    data: RevocationList | PlanSnapshot | ModelReleaseData,
    *,
    hub_id: str,
    key: Ed25519PrivateKey = CLOUD,
    now: datetime = NOW,
    lifetime: timedelta = timedelta(days=7),
) -> bytes:
    kind = {
        RevocationList: CommandKind.REVOCATIONS,
        PlanSnapshot: CommandKind.PLANS,
        ModelReleaseData: CommandKind.MODEL_RELEASE,
    }[type(data)]
    command = new_command(
        kind,
        data,
        hub_id=hub_id,
        now=now,
        lifetime=lifetime,
        rand=next(_ids).to_bytes(10, "big"),
    )
    return sign_command(command, key)
