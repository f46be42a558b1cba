"""`tecsa-cloud agents`: issue and revoke the tokens health agents present to hubs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.auth.tokens import issue_agent_token
from cloud.commands.cli import push_after_revoke
from cloud.config import load_cloud_settings
from cloud.db import connect
from cloud.db.agents import revoke_tokens, revoked_token_ids
from cloud.db.cli import DatabaseUrl, cli_errors, database_url
from wire.keys import load_private_key
from wire.tokens import MAX_LIFETIME, Role

agents_app = typer.Typer(
    help="Tokens for health agents' phones: issue, revoke, and the list hubs must refuse.",
    no_args_is_help=True,
)
_TTL = re.compile(r"^(\d+)\s*(m|h|d)$")


def _lifetime(text: str) -> timedelta:
    match = _TTL.match(text.strip().lower())
    if match is None:
        raise typer.BadParameter("use a duration like 90m, 12h or 7d")
    value = int(match.group(1))
    lifetime = {
        "m": timedelta(minutes=value),
        "h": timedelta(hours=value),
        "d": timedelta(days=value),
    }[match.group(2)]
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise typer.BadParameter(f"between 1 minute and {MAX_LIFETIME.days} days")
    return lifetime


@agents_app.command("token")
def token(
    agent_id: Annotated[str, typer.Argument(help="The agent's id, as the phone app knows it.")],
    role: Annotated[Role, typer.Option(help="agent, supervisor or technician.")] = Role.AGENT,
    ttl: Annotated[
        str, typer.Option(help="How long it is valid: 90m, 12h, 7d (at most 31d).")
    ] = "12h",
    database_url_: DatabaseUrl = None,
) -> None:
    """Issue a token, signed with the cloud signing key, and print it (only the id is stored).

    Hubs verify it offline; revoke it with 'tecsa-cloud agents revoke --token ID'.

    Example: tecsa-cloud agents token agent-17 --ttl 12h
    """
    lifetime = _lifetime(ttl)
    with cli_errors():
        key = load_private_key(load_cloud_settings().keys.signing_key, Ed25519PrivateKey)
        with connect(database_url(database_url_)) as conn:
            typer.echo(
                issue_agent_token(
                    conn,
                    key,
                    agent_id=agent_id,
                    role=role,
                    now=datetime.now(UTC),
                    lifetime=lifetime,
                )
            )


@agents_app.command("revoke")
def revoke(
    token_id: Annotated[str | None, typer.Option("--token", help="Revoke this token id.")] = None,
    agent_id: Annotated[
        str | None, typer.Option("--agent", help="Revoke every valid token of this agent.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the registry).")] = None,
    no_push: Annotated[
        bool,
        typer.Option(
            "--no-push", help="Only record it; hubs learn at the next hubs push-revocations."
        ),
    ] = False,
    database_url_: DatabaseUrl = None,
) -> None:
    """Revoke a token (lost phone) or every token of an agent (agent left), then tell the hubs.

    The new revocation list is pushed to every active hub at once (hubs refuse the token from
    then on). If the broker is unreachable the revocation is still recorded (exit status 0)
    and goes out with the next push: tecsa-cloud hubs push-revocations --all.

    Example: tecsa-cloud agents revoke --token 0193... --reason "phone lost"
    """
    if (token_id is None) == (agent_id is None):
        raise typer.BadParameter("give --token or --agent")
    with cli_errors(), connect(database_url(database_url_)) as conn:
        revoked = revoke_tokens(
            conn, now=datetime.now(UTC), token_id=token_id, agent_id=agent_id, reason=reason
        )
    typer.echo(f"revoked {len(revoked)} token(s)" + (": " + ", ".join(revoked) if revoked else ""))
    if not no_push:
        with cli_errors(), connect(database_url(database_url_)) as conn:
            push_after_revoke(conn)


@agents_app.command("revoked")
def revoked(
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array.")] = False,
    database_url_: DatabaseUrl = None,
) -> None:
    """The revocation list hubs must refuse: revoked tokens that have not expired yet."""
    with cli_errors(), connect(database_url(database_url_)) as conn:
        ids = revoked_token_ids(conn, now=datetime.now(UTC))
    typer.echo(json.dumps(ids) if as_json else "\n".join(ids) or "(none)")
