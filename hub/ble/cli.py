"""`tecsa-hub ble`: Bluetooth LE tools for technicians in the field."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import typer

from hub.ble.central import Backends, Found
from hub.ble.central import scan as central_scan
from hub.ble.parsers import (
    KNOWN_QUIRKS,
    PARSERS,
    ParseError,
    UnknownCharacteristic,
    normalize_uuid16,
    parse,
    to_json_dict,
)
from hub.ble.profiles import Profile, default_profiles_dir, load_profiles
from hub.errors import HubError

EXIT_INVALID_BYTES = 1
"""The bytes are not a valid value of the characteristic (the device sent something wrong)."""
EXIT_USAGE = 2
"""The command line is wrong: bad hex, an unknown characteristic or an unknown quirk."""

_SEPARATORS = re.compile(r"[\s:\-]+")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_MAX_HEX_CHARS = 2 * 512  # an attribute value is at most 512 bytes

app = typer.Typer(
    help="Bluetooth LE tools: find devices, and decode what a device sent as the hub stores it.",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Bluetooth LE tools: find devices, and decode what a device sent as the hub stores it."""


_SUPPORTED = ", ".join(f"{uuid} {name}" for uuid, (name, _) in sorted(PARSERS.items()))


@app.command(
    help=(
        "Decode one GATT value and print it as JSON, exactly as the hub parses it.\n\n"
        "CHARACTERISTIC is a 16-bit UUID: 2a35, 0x2A35 or "
        "00002a35-0000-1000-8000-00805f9b34fb. HEX is the value's bytes, with or without "
        "spaces or colons, in any case (quote it when it has spaces).\n\n"
        "Examples:\n\n"
        "  tecsa-hub ble decode 2a35 '00 BD F0 0B 00 9F F0'\n\n"
        "  tecsa-hub ble decode 0x2A1C 06:B0:0E:00:FE:DC:07:0C:05:0B:32:1B:04\n\n"
        "  tecsa-hub ble decode 2a35 566A0047000000EA07080B121F00003F000000 --quirk beurer_bm85\n\n"
        "Exit status: 0 decoded; 1 the bytes are not a valid value (the reason is on stderr); "
        "2 bad hex, unknown characteristic or unknown quirk.\n\n"
        f"Supported: {_SUPPORTED}."
    )
)
def decode(
    characteristic: str = typer.Argument(help="16-bit UUID: 2a35, 0x2A35 or the 128-bit form."),
    hex_value: list[str] = typer.Argument(
        metavar="HEX", help="The bytes in hex, e.g. '1E 8A 00' or 1e:8a:00 or 1E8A00."
    ),
    quirk: list[str] = typer.Option(
        [],
        "--quirk",
        help=f"Apply a device quirk, as the device's profile does; repeatable. "
        f"Known: {', '.join(sorted(KNOWN_QUIRKS))}.",
    ),
) -> None:
    """Decode one GATT value and print it as JSON."""
    text = _SEPARATORS.sub("", "".join(hex_value))
    text = text.removeprefix("0x").removeprefix("0X")
    if len(text) > _MAX_HEX_CHARS or not _HEX.fullmatch(text):
        _fail(EXIT_USAGE, "HEX must be pairs of hex digits (0-9, a-f), at most 512 bytes")
    unknown = sorted(set(quirk) - KNOWN_QUIRKS)
    if unknown:
        _fail(EXIT_USAGE, f"unknown quirk(s) {', '.join(unknown)}; known: {sorted(KNOWN_QUIRKS)}")
    try:
        uuid16 = normalize_uuid16(characteristic)
        if uuid16 not in PARSERS:
            _fail(EXIT_USAGE, f"no parser for characteristic {uuid16}; supported: {_SUPPORTED}")
        result = parse(uuid16, bytes.fromhex(text), quirks=frozenset(quirk))
    except UnknownCharacteristic as exc:
        _fail(EXIT_USAGE, str(exc))
    except ParseError as exc:
        _fail(EXIT_INVALID_BYTES, f"invalid {exc.characteristic} value: {exc.reason}")
    typer.echo(json.dumps(to_json_dict(result), sort_keys=False, allow_nan=False))


def _fail(code: int, reason: str) -> None:
    typer.echo(f"error: {reason}", err=True)
    raise typer.Exit(code)


@app.command(
    help=(
        "List the Bluetooth LE devices in range and the profile each one matches.\n\n"
        "Devices with no profile are listed too (last), so you can see a device the hub will "
        "ignore. With --virtual, scans the hub's virtual radio populated with one device of each "
        "kind instead of the adapter (works on any machine, no Bluetooth needed).\n\n"
        "Examples:\n\n"
        "  tecsa-hub ble scan\n\n"
        "  tecsa-hub ble scan --seconds 15 --json\n\n"
        "  tecsa-hub ble scan --virtual\n\n"
        "Exit status: 0 scanned (even if nothing was found); 2 Bluetooth is not usable here "
        "(the reason is on stderr) or the profiles are invalid."
    )
)
def scan(
    seconds: float = typer.Option(
        5.0, "--seconds", "-s", min=0.5, max=300, help="How long to listen."
    ),
    virtual: bool = typer.Option(False, "--virtual", help="Scan virtual devices, not the adapter."),
    as_json: bool = typer.Option(False, "--json", help="One JSON array instead of a table."),
    profiles_dir: Path | None = typer.Option(
        None, "--profiles", help="Device profiles directory (default: the ones shipped)."
    ),
) -> None:
    """List devices in range with their matched profile."""
    try:
        profiles = load_profiles(profiles_dir or default_profiles_dir())
        found = asyncio.run(_scan(profiles, seconds=seconds, virtual=virtual))
    except HubError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(f) for f in found], indent=2))
        return
    if not found:
        typer.echo(f"no devices heard in {seconds:g} s")
        return
    typer.echo(f"{'ADDRESS':<18} {'RSSI':>5}  {'PROFILE':<20} NAME")
    for f in found:
        rssi = "" if f.rssi is None else str(f.rssi)
        typer.echo(f"{f.address:<18} {rssi:>5}  {f.profile or '(no profile)':<20} {f.name or ''}")


async def _scan(profiles: tuple[Profile, ...], *, seconds: float, virtual: bool) -> list[Found]:
    if not virtual:
        return await central_scan(profiles, seconds=seconds)
    from hub.ble.bumble_backend import VirtualRadio  # noqa: PLC0415 - heavy; only for --virtual
    from hub.ble.virtual.demo import health_post_devices  # noqa: PLC0415 - same

    async with VirtualRadio() as radio:
        for device in health_post_devices(datetime.now(UTC)):
            await radio.add(device)
        backends = Backends(radio.scanner_backend, radio.client_backend)
        return await central_scan(profiles, seconds=seconds, backends=backends)
