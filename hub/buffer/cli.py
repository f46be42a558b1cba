"""`tecsa-hub buffer …` and `tecsa-hub devices`: read-only looks at the hub's SQLite buffer.

These commands open the file read-only, so they are safe while the daemon runs: they never take
the writer's lock and never change anything.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hub.buffer import queries
from hub.buffer.errors import HubBufferError, translate
from hub.buffer.schema import open_reader

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

DEFAULT_DB = Path("/var/lib/tecsa-hub/buffer.sqlite3")

DbOption = Annotated[
    Path,
    typer.Option(
        "--db",
        help="The buffer file the daemon writes (its `buffer.path` setting).",
        dir_okay=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")
]

buffer_app = typer.Typer(name="buffer", no_args_is_help=True, add_completion=False)
devices_app = typer.Typer(
    name="devices",
    help="BLE devices this hub has seen: profile, bond, battery, clock offset, last seen.",
    invoke_without_command=True,
    add_completion=False,
)


@buffer_app.callback()
def buffer_group() -> None:
    """Look inside the hub's buffer: the readings waiting for the cloud.

    Every command opens the file read-only: safe while the daemon runs.
    """


@buffer_app.command("stats")
def stats_command(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Show how many readings, medical records and triage results are stored and unsent.

    Also the oldest unsent reading, the size on disk and the capacity: unsent bytes count
    readings, records and triage results alike.

    "at capacity: yes" means the hub refuses new readings until the uplink delivers some:
    phones get HTTP 507 and keep their own queue, BLE downloads pause. Alert readings still
    have a small reserve.

    Example: tecsa-hub buffer stats --db ./buffer.sqlite3 --json
    """
    result = _with_reader(db, lambda conn: queries.stats(conn, db))
    if as_json:
        data = asdict(result) | {"at_capacity": result.at_capacity, "path": str(db)}
        print(json.dumps(data, default=_json_default, indent=2))
        return
    table = Table(title=f"hub buffer {db}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    cap = result.max_unsent_bytes
    table.add_row("readings stored", f"{result.total:,}")
    table.add_row("unsent (waiting for the cloud)", f"{result.unsent:,}")
    table.add_row("  of which in flight", f"{result.in_flight:,}")
    table.add_row("delivered", f"{result.delivered:,}")
    table.add_row("unsent bytes", f"{_size(result.unsent_bytes)} of {_size(cap) if cap else '?'}")
    oldest = result.oldest_unsent_received_at
    table.add_row("oldest unsent received", oldest.isoformat() if oldest else "-")
    table.add_row("file size on disk", _size(result.file_bytes))
    table.add_row("at capacity", "[red]yes[/red]" if result.at_capacity else "no")
    table.add_row("devices known", f"{result.devices:,}")
    table.add_row("open encounters", f"{result.open_encounters:,}")
    table.add_row("schema version", str(result.schema_version))
    for kind, count in sorted(result.by_kind.items()):
        table.add_row(f"  {kind}", f"{count.total:,} ({count.unsent:,} unsent)")
    records, triage = result.records, result.triage
    table.add_row("medical records", f"{records.total:,} ({records.unsent:,} unsent)")
    table.add_row("triage results", f"{triage.total:,} ({triage.unsent:,} unsent)")
    Console().print(table)


@devices_app.callback(invoke_without_command=True)
def devices_command(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """List the BLE devices the hub knows, most recently seen first.

    Example: tecsa-hub devices --db ./buffer.sqlite3
    """
    found = _with_reader(db, queries.devices)
    if as_json:
        print(json.dumps([asdict(d) for d in found], default=_json_default, indent=2))
        return
    if not found:
        Console().print("No devices yet: the hub registers a device the first time it connects.")
        return
    table = Table(title=f"devices in {db}")
    for column in ("address", "profile", "name", "bond", "battery", "clock offset", "last seen"):
        table.add_column(column)
    for d in found:
        table.add_row(
            d.address,
            d.profile,
            d.name or "-",
            d.bond_state.value,
            "-" if d.battery_pct is None else f"{d.battery_pct}%",
            "-" if d.clock_offset_s is None else f"{d.clock_offset_s:+.1f} s",
            d.last_seen.isoformat(timespec="seconds"),
        )
    Console().print(table)


def _with_reader(db: Path, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn` on a read-only connection; a buffer error becomes a clear message and exit 1."""
    try:
        with closing(open_reader(db)) as conn:
            return fn(conn)
    except sqlite3.Error as exc:
        error: HubBufferError = translate(exc, f"reading {db}")
    except HubBufferError as exc:
        error = exc
    Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}")
    raise typer.Exit(code=1)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":  # noqa: PLR2004 - binary prefixes
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
