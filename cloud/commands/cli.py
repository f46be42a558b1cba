"""`tecsa-cloud hubs push-revocations` and `tecsa-cloud plans publish`: send commands to hubs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.commands.errors import BrokerUnavailable
from cloud.commands.push import Pushed, load_plans_file, publish_plans, push_revocations
from cloud.config import load_cloud_settings
from cloud.db import connect
from cloud.db.cli import DatabaseUrl, cli_errors, database_url
from wire.keys import load_private_key

if TYPE_CHECKING:
    import psycopg

plans_app = typer.Typer(
    help=(
        "Plans (campaigns, visits) for health agents: sent to hubs, which serve them to phones "
        "at GET /api/v1/plans/."
    ),
    no_args_is_help=True,
)

HubOption = Annotated[
    str | None, typer.Option("--hub", help="Send to this hub only.", show_default=False)
]
AllOption = Annotated[bool, typer.Option("--all", help="Send to every active hub.")]


def _target(hub: str | None, *, all_: bool) -> str | None:
    if (hub is None) == (not all_):
        raise typer.BadParameter("give --hub ID or --all")
    return hub


def push_revocations_command(
    hub: HubOption = None, all_: AllOption = False, database_url_: DatabaseUrl = None
) -> None:
    """Send the revocation list (revoked tokens not expired yet) to a hub or to every hub.

    Hubs refuse a revoked token from the moment they receive the list. Each push carries the
    whole list with a newer version, so pushing again is always safe. A hub that is offline
    gets it with the next push after it is back ('tecsa-hub' reports the version it holds in
    its status). Exit status 1 if the broker cannot be reached, 2 on other errors.

    Example: tecsa-cloud hubs push-revocations --all
    """
    target = _target(hub, all_=all_)
    with cli_errors():
        settings = load_cloud_settings()
        key = load_private_key(settings.keys.signing_key, Ed25519PrivateKey)
        with connect(database_url(database_url_)) as conn:
            try:
                pushed = push_revocations(
                    conn, key=key, mqtt=settings.mqtt, hub_id=target, now=datetime.now(UTC)
                )
            except BrokerUnavailable as exc:
                typer.echo(f"error: not sent: {exc}; run this again when it is back", err=True)
                raise typer.Exit(1) from None
    _report(pushed, "revoked token(s)")


def plans_publish(
    file: Annotated[
        Path,
        typer.Argument(
            help='JSON file: a list of plans, or {"plans": [...]}. A plan has id, title, kind '
            "(campaign or visit), starts_at, optional ends_at, agent_ids (empty: every agent) "
            "and payload (free JSON for the phone app)."
        ),
    ],
    hub: HubOption = None,
    all_: AllOption = False,
    database_url_: DatabaseUrl = None,
) -> None:
    """Send these plans to a hub or to every hub: they replace the hub's plans whole.

    The file is checked first (a bad plan is named by its index and field, nothing is sent).
    Exit status 1 if the broker cannot be reached, 2 on other errors.

    Example: tecsa-cloud plans publish plans-november.json --hub hub-kita-01
    """
    target = _target(hub, all_=all_)
    with cli_errors():
        plans = load_plans_file(file)
        settings = load_cloud_settings()
        key = load_private_key(settings.keys.signing_key, Ed25519PrivateKey)
        with connect(database_url(database_url_)) as conn:
            try:
                pushed = publish_plans(
                    conn,
                    plans,
                    key=key,
                    mqtt=settings.mqtt,
                    hub_id=target,
                    now=datetime.now(UTC),
                )
            except BrokerUnavailable as exc:
                typer.echo(f"error: not sent: {exc}; run this again when it is back", err=True)
                raise typer.Exit(1) from None
    _report(pushed, "plan(s)")


plans_app.command("publish")(plans_publish)


def push_after_revoke(conn: psycopg.Connection[Any]) -> None:
    """After `agents revoke`: send the new list to every hub; a broker outage is not an error."""
    settings = load_cloud_settings()
    key = load_private_key(settings.keys.signing_key, Ed25519PrivateKey)
    try:
        pushed = push_revocations(
            conn, key=key, mqtt=settings.mqtt, hub_id=None, now=datetime.now(UTC)
        )
    except BrokerUnavailable as exc:
        typer.echo(
            f"the revocation is recorded; hubs were not told now ({exc}): it will go out with "
            "the next push (tecsa-cloud hubs push-revocations --all)"
        )
        return
    _report(pushed, "revoked token(s)")


def _report(pushed: Pushed, what: str) -> None:
    hubs = ", ".join(pushed.hubs) if pushed.hubs else "(no active hub)"
    typer.echo(f"sent {pushed.kind} version {pushed.version} ({pushed.items} {what}) to {hubs}")
