"""`tecsa-hub models …`: the signed triage models installed on this hub."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.config import load_hub_settings
from hub.errors import HubError
from hub.logging import configure_logging
from hub.models.store import ModelStore, NoPreviousModel, ReleaseRefused
from wire.errors import WireError
from wire.keys import load_public_key
from wire.releases import MAX_RELEASE

models_app = typer.Typer(name="models", no_args_is_help=True, add_completion=False)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Hub configuration file (TOML); gives models.dir and identity.cloud_signing_key.",
        dir_okay=False,
    ),
]
DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="Models directory; default: the config's models.dir."),
]
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--cloud-key",
        help="The cloud signing public key (PEM); default: identity.cloud_signing_key.",
        dir_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@models_app.callback()
def models_group() -> None:
    """Signed triage models: list them, install a release file, roll back.

    The hub only runs a model the cloud signed, whose checksum matches and whose self-test
    vectors pass in a fresh interpreter; it keeps the previous model for `rollback`. Releases
    normally arrive from the cloud on down/cmd (`tecsa-cloud models rollout`). A running daemon
    picks up a change made here when it reloads its model.
    """
    configure_logging(level="WARNING")  # stdout is for the command's result


@models_app.command("list")
def list_command(
    config: ConfigOption = None,
    directory: DirOption = None,
    cloud_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show installed model versions: which is active, which is previous, and whether each verifies.

    Example: tecsa-hub models list --json
    """
    store = _store(config, directory, cloud_key)
    models = store.installed()
    if as_json:
        typer.echo(json.dumps([asdict(m) for m in models], indent=2))
        return
    if not models:
        typer.echo(f"no model installed in {store.dir} (triage uses the bundled default or NEWS2)")
        return
    for m in models:
        ok = "" if m.valid else "  (DOES NOT VERIFY)"
        typer.echo(f"{m.state:9} {m.version:24} {m.created_at or '-':32} {m.feature_spec}{ok}")


@models_app.command("install")
def install_command(
    release_file: Annotated[
        Path, typer.Argument(help="A release file (from `tecsa-cloud models rollout --out`).")
    ],
    config: ConfigOption = None,
    directory: DirOption = None,
    cloud_key: KeyOption = None,
    allow_downgrade: Annotated[
        bool, typer.Option("--allow-downgrade", help="Accept a version older than the active.")
    ] = False,
) -> None:
    """Verify, self-test and activate a signed model release from a file.

    Exit status: 0 activated (or already active); 2 refused, with the reason; the active model
    is then unchanged.

    Example: tecsa-hub models install ./triage-2.release
    """
    store = _store(config, directory, cloud_key)
    try:
        if release_file.stat().st_size > MAX_RELEASE:
            _fail(f"{release_file} is larger than any model release ({MAX_RELEASE} bytes)")
        sealed = release_file.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {release_file}: {exc.strerror}")
    try:
        result = store.install(sealed, allow_downgrade=allow_downgrade)
    except ReleaseRefused as exc:
        _fail(f"{exc} (active model unchanged: {store.active_version() or 'none'})")
    typer.echo(json.dumps(asdict(result)))


@models_app.command("rollback")
def rollback_command(
    config: ConfigOption = None, directory: DirOption = None, cloud_key: KeyOption = None
) -> None:
    """Make the previous model active again; the active one becomes the previous.

    Example: tecsa-hub models rollback && tecsa-hub models list
    """
    store = _store(config, directory, cloud_key)
    try:
        result = store.rollback()
    except (NoPreviousModel, ReleaseRefused) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(asdict(result)))


def _store(config: Path | None, directory: Path | None, cloud_key: Path | None) -> ModelStore:
    try:
        if directory is None or cloud_key is None:
            settings = load_hub_settings(config)
            directory = directory or settings.models.dir
            cloud_key = cloud_key or settings.identity.cloud_signing_key
        key = load_public_key(cloud_key, Ed25519PublicKey)
    except (HubError, WireError) as exc:
        _fail(str(exc))
    return ModelStore(directory, key)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
