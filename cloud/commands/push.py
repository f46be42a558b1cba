"""Build, sign, record and publish commands for one hub or every active hub.

One command per hub (a command names exactly one hub), all sharing one snapshot version from
`cloud.db.commands.next_version`. Commands are recorded before they are published, and marked
published once the broker accepted them (QoS 1 PUBACK). A hub that is offline with no broker
session misses a command; the next push carries a newer full snapshot, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from cloud.commands.errors import PlansFileError
from cloud.commands.publisher import publish_commands
from cloud.db.commands import (
    mark_published,
    next_version,
    record_commands,
    revocation_entries,
    save_plans,
    target_hubs,
)
from wire.commands import (
    CommandKind,
    RevocationList,
    RevokedToken,
    new_command,
    sign_command,
)
from wire.plans import MAX_PLANS, Plan, PlanSnapshot
from wire.topics import cmd_topic

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from pathlib import Path

    import psycopg
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from pydantic import BaseModel

    from cloud.config import MqttSettings

COMMAND_LIFETIME = timedelta(days=7)
"""How long a command stays valid; a hub remembers its id that long to refuse replays."""
MAX_PLANS_FILE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Pushed:
    """What a push sent: the kind, the snapshot version and the hubs it went to."""

    kind: CommandKind
    version: int
    hubs: tuple[str, ...]
    items: int
    """Revoked tokens, or plans, in the snapshot."""


def push_revocations(
    conn: psycopg.Connection[Any],
    *,
    key: Ed25519PrivateKey,
    mqtt: MqttSettings,
    hub_id: str | None,
    now: datetime,
) -> Pushed:
    """Send the current revocation list to `hub_id` (or every active hub when None).

    Raises `BrokerUnavailable` when the broker cannot take them (the commands stay recorded).
    """
    hubs = target_hubs(conn, hub_id)
    entries = revocation_entries(conn, now=now)
    snapshot = RevocationList(
        version=next_version(conn),
        revoked=tuple(RevokedToken(jti=jti, expires_at=exp) for jti, exp in entries),
    )
    _send(conn, CommandKind.REVOCATIONS, snapshot, hubs, key=key, mqtt=mqtt, now=now)
    return Pushed(CommandKind.REVOCATIONS, snapshot.version, tuple(hubs), len(entries))


def publish_plans(
    conn: psycopg.Connection[Any],
    plans: Sequence[Plan],
    *,
    key: Ed25519PrivateKey,
    mqtt: MqttSettings,
    hub_id: str | None,
    now: datetime,
) -> Pushed:
    """Send `plans` as the full plans snapshot of `hub_id` (or of every active hub)."""
    hubs = target_hubs(conn, hub_id)
    snapshot = PlanSnapshot(version=next_version(conn), plans=tuple(plans))
    for hub in hubs:
        save_plans(
            conn, hub, version=snapshot.version, plans=snapshot.model_dump(mode="json"), at=now
        )
    _send(conn, CommandKind.PLANS, snapshot, hubs, key=key, mqtt=mqtt, now=now)
    return Pushed(CommandKind.PLANS, snapshot.version, tuple(hubs), len(snapshot.plans))


def load_plans_file(path: Path) -> list[Plan]:
    """The plans in a JSON file: a list of plans, or an object `{"plans": [...]}`.

    Raises `PlansFileError` naming the file and, for an invalid plan, its index and field.
    """
    try:
        if path.stat().st_size > MAX_PLANS_FILE:
            raise PlansFileError(f"{path} is larger than {MAX_PLANS_FILE} bytes")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PlansFileError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise PlansFileError(f"{path} is not JSON: {exc}") from None
    if isinstance(raw, dict) and set(raw) <= {"plans", "version"} and "plans" in raw:
        raw = raw["plans"]
    if not isinstance(raw, list):
        raise PlansFileError(f'{path}: expected a list of plans or {{"plans": [...]}}')
    if len(raw) > MAX_PLANS:
        raise PlansFileError(f"{path}: {len(raw)} plans, at most {MAX_PLANS} per hub")
    plans: list[Plan] = []
    for index, item in enumerate(raw):
        try:
            plans.append(Plan.model_validate(item))
        except ValidationError as exc:
            err = exc.errors(include_url=False, include_input=False)[0]
            field = ".".join(map(str, err["loc"])) or "plan"
            raise PlansFileError(f"{path}: plan {index}: {field}: {err['msg']}") from None
    try:
        PlanSnapshot(version=0, plans=tuple(plans))
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        raise PlansFileError(f"{path}: {err['msg']}") from None
    return plans


def _send(
    conn: psycopg.Connection[Any],
    kind: CommandKind,
    data: BaseModel,
    hubs: Sequence[str],
    *,
    key: Ed25519PrivateKey,
    mqtt: MqttSettings,
    now: datetime,
) -> None:
    commands = [
        new_command(kind, data, hub_id=hub, now=now, lifetime=COMMAND_LIFETIME, rand=os.urandom(10))
        for hub in hubs
    ]
    signed = [(cmd_topic(c.hub_id), sign_command(c, key)) for c in commands]  # TooLarge first
    version = getattr(data, "version", None)
    record_commands(
        conn, [(c.id, c.hub_id, kind.value, version, c.issued_at, c.expires_at) for c in commands]
    )
    if not signed:
        return
    asyncio.run(publish_commands(mqtt, signed))
    mark_published(conn, [c.id for c in commands], at=now)
