"""`tecsa-hub`: the technicians' command line for a Tecsa Hub. Its --help is its documentation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hub import phones_cli, plans_cli
from hub.ble import cli as ble_cli
from hub.buffer import cli as buffer_cli
from hub.config import (
    DEFAULT_CONFIG,
    EXCHANGE_KEY_FILE,
    IDENTITY_KEY_FILE,
    HubSettings,
    load_hub_settings,
)
from hub.daemon import DaemonOptions, serve
from hub.errors import HubError
from hub.inference import cli as triage_cli
from hub.logging import configure_logging
from hub.models import cli as models_cli
from hub.uplink import cli as uplink_cli
from wire.errors import WireError
from wire.keys import fingerprint, load_private_key, save_private_key, save_public_key

IDENTITY_KEY = IDENTITY_KEY_FILE
EXCHANGE_KEY = EXCHANGE_KEY_FILE

app = typer.Typer(
    name="tecsa-hub",
    help=(
        "Tecsa Hub: collects readings from BLE medical devices and health agents' phones at a "
        "health post, buffers them safely, and forwards them to the cloud.\n\n"
        "Every command reads the hub configuration from --config (default "
        f"{DEFAULT_CONFIG}, if present) overlaid by TECSA_HUB_* environment variables."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Inspect the hub configuration.", no_args_is_help=True)
keys_app = typer.Typer(
    help="The hub's own keys (generated here, never copied off).", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(keys_app, name="keys")
app.add_typer(ble_cli.app, name="ble")
app.add_typer(buffer_cli.buffer_app, name="buffer")
app.add_typer(buffer_cli.devices_app, name="devices")
app.add_typer(uplink_cli.uplink_app, name="uplink")
app.add_typer(triage_cli.triage_app, name="triage")
app.add_typer(plans_cli.plans_app, name="plans")
app.add_typer(phones_cli.phones_app, name="phones")
app.add_typer(models_cli.models_app, name="models")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=f"Hub configuration file (TOML). Default: {DEFAULT_CONFIG} if it exists.",
        dir_okay=False,
    ),
]


def _settings(config: Path | None) -> HubSettings:
    try:
        return load_hub_settings(config)
    except HubError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration and print the effective values (secrets hidden).

    Exits 0 when the hub could start with it, 2 with the reason otherwise.

    Example: tecsa-hub config check --config /etc/tecsa-hub/hub.toml
    """
    settings = _settings(config)
    typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2))


@keys_app.command("init")
def keys_init(config: ConfigOption = None) -> None:
    """Generate this hub's identity (Ed25519) and key-exchange (X25519) keys in identity.key_dir.

    Refuses to replace existing keys: a hub's identity is registered in the cloud, and a new
    one would make its batches unverifiable. Private key files are created with mode 0600.

    Example: tecsa-hub keys init && tecsa-hub keys show
    """
    settings = _settings(config)
    key_dir = settings.identity.key_dir
    written = []
    try:
        for name, key in (
            (IDENTITY_KEY, Ed25519PrivateKey.generate()),
            (EXCHANGE_KEY, X25519PrivateKey.generate()),
        ):
            path = key_dir / name
            if path.exists():
                typer.echo(f"kept existing {path}")
                continue
            save_private_key(key, path)
            save_public_key(key, path.with_name(name.replace(".pem", ".pub.pem")))
            written.append(path)
    except (WireError, OSError) as exc:
        _fail(f"cannot write keys in {key_dir}: {exc}")
    for path in written:
        typer.echo(f"wrote {path} (mode 0600) and its public key")
    keys_show(config)


@keys_app.command("show")
def keys_show(config: ConfigOption = None) -> None:
    """Print the fingerprints of this hub's public keys, to compare with the cloud's registry."""
    settings = _settings(config)
    key_dir = settings.identity.key_dir
    try:
        identity = load_private_key(key_dir / IDENTITY_KEY, Ed25519PrivateKey)
        exchange = load_private_key(key_dir / EXCHANGE_KEY, X25519PrivateKey)
    except WireError as exc:
        _fail(f"{exc} (run 'tecsa-hub keys init' to create the keys)")
    typer.echo(f"hub_id:            {settings.identity.hub_id}")
    typer.echo(f"identity ed25519:  {fingerprint(identity)}")
    typer.echo(f"exchange x25519:   {fingerprint(exchange)}")


@app.command("run")
def run(
    config: ConfigOption = None,
    virtual_devices: bool = typer.Option(
        False,
        "--virtual-devices",
        help="Use an in-process virtual radio with virtual devices instead of the adapter.",
    ),
    device_count: int = typer.Option(
        6, "--device-count", min=1, max=200, help="With --virtual-devices: how many devices."
    ),
    simulate_every: float | None = typer.Option(
        None,
        "--simulate-every",
        min=0.01,
        help="With --virtual-devices: one device measures every this many seconds.",
    ),
) -> None:
    """Run the hub daemon: BLE central, buffer, phones' API, triage and uplink to the cloud.

    Runs until SIGTERM or Ctrl-C, then finishes what it holds and closes the buffer cleanly.
    Logs are JSON lines on stderr unless stderr is a terminal.

    For example:

      tecsa-hub run -c /etc/tecsa-hub/hub.toml

      tecsa-hub run -c hub.toml --virtual-devices --simulate-every 2
    """
    settings = _settings(config)
    configure_logging()
    options = DaemonOptions(
        virtual_devices=device_count if virtual_devices else 0,
        simulate_every_s=simulate_every if virtual_devices else None,
    )
    try:
        serve(settings, options)
    except HubError as exc:
        _fail(str(exc))


def main() -> None:
    """Console entry point."""
    app()
