"""`tecsa-hub phones`: the agents' phones the hub has seen on the LAN (zeroconf), read-only.

Informative only: what a phone advertises is not trusted (its requests are authenticated by the
token the cloud issued). Opens the buffer read-only, so it is safe while the daemon runs.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import asdict
from pathlib import Path  # noqa: TC003 - typer reads the annotations at run time
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hub.buffer import phones as phone_rows
from hub.buffer.cli import DEFAULT_DB
from hub.buffer.errors import HubBufferError, translate
from hub.buffer.schema import open_reader

phones_app = typer.Typer(
    name="phones",
    help="Phones the hub has seen on the LAN: name, agent, app, first and last seen, present.",
    invoke_without_command=True,
    add_completion=False,
)


@phones_app.callback(invoke_without_command=True)
def phones_command(
    db: Annotated[
        Path,
        typer.Option(
            "--db",
            help="The buffer file the daemon writes (its `buffer.path` setting).",
            dir_okay=False,
        ),
    ] = DEFAULT_DB,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")
    ] = False,
) -> None:
    """List the phones seen, most recently seen first.

    "present: no" means the phone withdrew its zeroconf record (left or switched off); the
    agent and app shown are what it advertised, not verified.

    Example: tecsa-hub phones --db ./buffer.sqlite3 --json
    """
    try:
        with closing(open_reader(db)) as conn:
            found = phone_rows.phones(conn)
    except (sqlite3.Error, HubBufferError) as exc:
        error = translate(exc, f"reading {db}") if isinstance(exc, sqlite3.Error) else exc
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(code=1) from None
    if as_json:
        rows = [
            asdict(p)
            | {"first_seen": p.first_seen.isoformat(), "last_seen": p.last_seen.isoformat()}
            for p in found
        ]
        print(json.dumps(rows, indent=2))  # noqa: T201 - the command's output
        return
    if not found:
        Console().print("No phones seen yet: phones appear when their app advertises itself.")
        return
    table = Table(title=f"phones seen ({db})")
    for column in ("name", "agent", "app", "first seen", "last seen", "present"):
        table.add_column(column)
    for p in found:
        table.add_row(
            escape(p.name),
            escape(p.agent or "-"),
            escape(p.app or "-"),
            p.first_seen.isoformat(timespec="seconds"),
            p.last_seen.isoformat(timespec="seconds"),
            "yes" if p.present else "no",
        )
    Console().print(table)
