"""`tecsa-cloud db ...` and `tecsa-cloud hubs ...`: the operators' commands for the database.

The lead mounts `db_app` and `hubs_app` into `tecsa-cloud`; every command is short-lived, opens
one connection and exits 2 with a one-line message on stderr when something is wrong.
"""

from __future__ import annotations

import contextlib
import json
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from cloud.config import load_cloud_settings
from cloud.db.connection import connect
from cloud.db.hubs import Hub, add_hub, get_hub, list_hubs, revoke_hub
from cloud.db.partitions import ensure_partitions_around, list_partitions
from cloud.db.schema import schema_status, upgrade
from cloud.errors import CloudError
from wire.errors import WireError
from wire.keys import load_public_key

if TYPE_CHECKING:
    from collections.abc import Iterator

db_app = typer.Typer(
    help="The PostgreSQL schema: apply migrations, create partitions, show where it stands.",
    no_args_is_help=True,
)
hubs_app = typer.Typer(
    help="The hub registry: which hubs may send batches, and with which public keys.",
    no_args_is_help=True,
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="PostgreSQL URL, e.g. postgresql://user@host:5432/tecsa "
        "(default: TECSA_CLOUD_DATABASE__URL).",
        show_default=False,
    ),
]


@db_app.command("upgrade")
def db_upgrade(
    database_url: DatabaseUrl = None,
    months_ahead: Annotated[
        int, typer.Option(min=0, max=60, help="Create reading partitions this many months ahead.")
    ] = 3,
) -> None:
    """Apply pending migrations, then create the monthly reading partitions around today.

    Safe to run at any time and from several places at once: applied migrations are skipped,
    and concurrent runs wait for each other. Run it at every deployment, and monthly (cron or a
    Kubernetes CronJob) so partitions always exist ahead of the data.

    Example: tecsa-cloud db upgrade --database-url postgresql://postgres@db:5432/tecsa
    """
    url = _url(database_url)
    with _errors():
        applied = upgrade(url)
        with connect(url) as conn:
            created = ensure_partitions_around(conn, datetime.now(UTC), ahead=months_ahead)
            status = schema_status(conn)
    for migration in applied:
        typer.echo(f"applied {migration.label} (sha256 {migration.sha256[:12]})")
    typer.echo(f"schema version {status.version}: up to date")
    for name in created:
        typer.echo(f"created partition {name}")


@db_app.command("status")
def db_status(database_url: DatabaseUrl = None) -> None:
    """Show applied and pending migrations and the reading partitions.

    Exits 1 when migrations are pending (run: tecsa-cloud db upgrade), 2 on errors.
    """
    with _errors(), connect(_url(database_url)) as conn:
        status = schema_status(conn)
        partitions = list_partitions(conn) if status.applied else []
    for applied in status.applied:
        when = applied.applied_at.astimezone(UTC).isoformat(timespec="seconds")
        typer.echo(f"applied  {applied.version:04d}_{applied.name}  {when}")
    for migration in status.pending:
        typer.echo(f"pending  {migration.label}")
    typer.echo(
        f"partitions: {len(partitions)}"
        + (f" ({partitions[0]} .. {partitions[-1]})" if partitions else "")
    )
    if status.pending:
        typer.echo("the database needs an upgrade: run tecsa-cloud db upgrade", err=True)
        raise typer.Exit(1)
    typer.echo(f"schema version {status.version}: up to date")


@hubs_app.command("add")
def hubs_add(
    hub_id: Annotated[str, typer.Argument(help="The hub's id: a DNS label such as hub-kita-01.")],
    identity_key: Annotated[
        Path,
        typer.Option(
            help="PEM file with the hub's Ed25519 identity public key (identity.pub.pem)."
        ),
    ],
    exchange_key: Annotated[
        Path | None,
        typer.Option(help="PEM file with the hub's X25519 exchange public key."),
    ] = None,
    note: Annotated[str | None, typer.Option(help="Free text: site, contact, serial.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Register a hub and its public keys so that its batches are accepted.

    Compare the printed fingerprint with the one the hub shows (tecsa-hub keys show). Adding the
    same hub with the same key again changes nothing; another key for a known hub id is refused.

    Example: tecsa-cloud hubs add hub-kita-01 --identity-key hub-kita-01.identity.pub.pem
    """
    with _errors():
        identity = load_public_key(identity_key, Ed25519PublicKey)
        exchange = None if exchange_key is None else load_public_key(exchange_key, X25519PublicKey)
        with connect(_url(database_url)) as conn:
            hub, added = add_hub(conn, hub_id, identity, exchange_key=exchange, note=note)
    verb = "added hub" if added else "hub already registered with this key:"
    typer.echo(f"{verb} {hub.hub_id} key id {hub.identity_key_id} fingerprint {hub.fingerprint}")


@hubs_app.command("list")
def hubs_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for scripts.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List registered hubs with their status and identity key ids."""
    with _errors(), connect(_url(database_url)) as conn:
        hubs = list_hubs(conn)
    if as_json:
        typer.echo(json.dumps([_hub_json(h) for h in hubs], indent=2))
        return
    if not hubs:
        typer.echo("no hubs registered (add one: tecsa-cloud hubs add HUB_ID --identity-key FILE)")
        return
    width = max(len(h.hub_id) for h in hubs)
    for h in hubs:
        since = (h.revoked_at or h.created_at).astimezone(UTC).isoformat(timespec="seconds")
        typer.echo(
            f"{h.hub_id:<{width}}  {h.status:<7}  {h.identity_key_id}  {since}  {h.note or ''}"
        )


@hubs_app.command("revoke")
def hubs_revoke(
    hub_id: Annotated[str, typer.Argument(help="The hub to revoke.")],
    reason: Annotated[str | None, typer.Option(help="Why: kept with the hub's record.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a hub: its batches are quarantined from now on. It cannot be re-activated."""
    with _errors(), connect(_url(database_url)) as conn:
        before = get_hub(conn, hub_id)
        hub = revoke_hub(conn, hub_id, reason=reason)
    when = hub.revoked_at.astimezone(UTC).isoformat(timespec="seconds") if hub.revoked_at else "?"
    if before is not None and before.active:
        typer.echo(f"revoked hub {hub.hub_id} at {when}")
    else:
        typer.echo(f"hub {hub.hub_id} was revoked already at {when}")


def _hub_json(hub: Hub) -> dict[str, object]:
    return {
        "hub_id": hub.hub_id,
        "status": hub.status,
        "identity_key_id": hub.identity_key_id,
        "fingerprint": hub.fingerprint,
        "identity_key": hub.identity_key.hex(),
        "exchange_key": hub.exchange_key.hex() if hub.exchange_key else None,
        "created_at": hub.created_at.isoformat(),
        "revoked_at": hub.revoked_at.isoformat() if hub.revoked_at else None,
        "revoke_reason": hub.revoke_reason,
        "note": hub.note,
    }


def database_url(given: str | None) -> str:
    """The given URL, or the configured one."""
    return _url(given)


def _url(given: str | None) -> str:
    if given:
        return given
    with _errors():
        return load_cloud_settings().database.url.get_secret_value()


def cli_errors() -> contextlib.AbstractContextManager[None]:
    """Turn cloud and wire errors into a clear message on stderr and exit status 2."""
    return _errors()


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (CloudError, WireError) as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
