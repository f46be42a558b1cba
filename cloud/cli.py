"""`tecsa-cloud`: the operators' command line for the TecsaS3 cloud. Its --help documents it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloud.auth import cli as auth_cli
from cloud.commands import cli as commands_cli
from cloud.config import CloudSettings, load_cloud_settings
from cloud.db import cli as db_cli
from cloud.db.records_cli import records_app
from cloud.errors import CloudError
from cloud.ingest.cli import ingest_command, replay_command
from cloud.models import release_cli
from wire.errors import WireError
from wire.keys import fingerprint, load_private_key, save_private_key, save_public_key

app = typer.Typer(
    name="tecsa-cloud",
    help=(
        "TecsaS3 cloud: ingests sealed batches from hubs into PostgreSQL and S3, and serves the "
        "API for agents, doctors, technicians and operators.\n\n"
        "Configuration comes from TECSA_CLOUD_* environment variables; any of them may be given "
        "as <NAME>_FILE pointing at a secret file."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Inspect the cloud configuration.", no_args_is_help=True)
keys_app = typer.Typer(help="The cloud's ingest and signing keys.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(keys_app, name="keys")
app.add_typer(db_cli.db_app, name="db")
app.add_typer(db_cli.hubs_app, name="hubs")
app.add_typer(auth_cli.agents_app, name="agents")
app.add_typer(commands_cli.plans_app, name="plans")
db_cli.hubs_app.command("push-revocations")(commands_cli.push_revocations_command)
app.add_typer(release_cli.models_app, name="models")
app.add_typer(records_app, name="records")
app.command("ingest")(ingest_command)
app.command("replay")(replay_command)


def _settings() -> CloudSettings:
    try:
        return load_cloud_settings()
    except CloudError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@config_app.command("check")
def config_check() -> None:
    """Validate the configuration and print the effective values (secrets hidden).

    Example: TECSA_CLOUD_DATABASE__URL_FILE=/run/secrets/db tecsa-cloud config check
    """
    typer.echo(json.dumps(_settings().model_dump(mode="json"), indent=2))


@keys_app.command("init")
def keys_init(
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for the keys; default: where TECSA_CLOUD_KEYS__* point."),
    ] = None,
) -> None:
    """Generate the ingest key (X25519, opens batches) and the signing key (Ed25519, signs acks).

    Public halves are written next to them (*.pub.pem): hand the ingest public key and the
    signing public key to hub provisioning. Existing keys are never replaced.
    """
    keys = _settings().keys
    ingest = out / "tecsa-ingest.pem" if out else keys.ingest_key
    signing = out / "tecsa-signing.pem" if out else keys.signing_key
    _init_key("ingest", ingest, X25519PrivateKey)
    _init_key("signing", signing, Ed25519PrivateKey)


def _init_key(label: str, path: Path, kind: type[X25519PrivateKey | Ed25519PrivateKey]) -> None:
    try:
        if path.exists():
            existing = load_private_key(path, kind)
            typer.echo(f"kept existing {label} key {path}: {fingerprint(existing)}")
            return
        new = kind.generate()
        save_private_key(new, path)
        save_public_key(new, path.with_name(path.name.replace(".pem", ".pub.pem")))
        typer.echo(f"wrote {label} key {path} (mode 0600): {fingerprint(new)}")
    except (WireError, OSError) as exc:
        _fail(f"cannot create the {label} key at {path}: {exc}")


def main() -> None:
    """Console entry point."""
    app()
