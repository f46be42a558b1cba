"""`tecsa-hub uplink status`: what the uplink has left to send and whether the cloud answers.

Opens the buffer file read-only (like `tecsa-hub buffer stats`), so it is safe while the daemon
runs; the breaker state and last error are what the running uplink last recorded there.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub.buffer import queries
from hub.buffer.cli import DEFAULT_DB, DbOption, _with_reader

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")
]

uplink_app = typer.Typer(name="uplink", no_args_is_help=True, add_completion=False)


@uplink_app.callback()
def uplink_group() -> None:
    """The link to the cloud: backlog, batches waiting for the cloud's ack, the circuit breaker."""


@uplink_app.command("status")
def status_command(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Show the backlog, the oldest unsent reading, batches in flight, the last ack and the breaker.

    "breaker: open" means the broker or the cloud stopped answering: the hub keeps everything
    and sends one probe batch now and then until an ack comes back. "rejected" batches were
    quarantined by the cloud; their readings stay on the hub for review.

    Example: tecsa-hub uplink status --db ./buffer.sqlite3 --json
    """
    status = _with_reader(db, queries.uplink_status)
    now = datetime.now(UTC)
    oldest = status.oldest_unsent_received_at
    age = (now - oldest).total_seconds() if oldest is not None else None
    state = status.state
    if as_json:
        data = asdict(status) | {"oldest_unsent_age_s": age, "path": str(db)}
        print(json.dumps(data, default=_json_default, indent=2))
        return
    table = Table(title=f"uplink of {db}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("backlog (readings not acked)", f"{status.unsent:,}")
    table.add_row("  not yet in a batch", f"{status.waiting:,}")
    table.add_row("oldest unsent", "-" if age is None else f"{_duration(age)} ago")
    table.add_row(
        "batches in flight",
        f"{status.in_flight_batches:,} ({status.in_flight_readings:,} readings)",
    )
    table.add_row(
        "batches rejected by the cloud",
        f"{status.rejected_batches:,} ({status.rejected_readings:,} readings)",
    )
    table.add_row("batches acked", f"{status.acked_batches:,}")
    last = status.last_ack_at
    table.add_row(
        "last ack",
        "never"
        if last is None
        else f"{status.last_ack_status} {_duration((now - last).total_seconds())} ago",
    )
    if state is None:
        table.add_row("uplink", "has not run on this buffer yet")
    else:
        breaker = state.breaker if state.breaker == "closed" else f"[red]{state.breaker}[/red]"
        table.add_row("breaker", breaker)
        table.add_row("connected", "yes" if state.connected else "no")
        table.add_row("last error", state.last_error or "-")
        table.add_row("state recorded", state.updated_at.isoformat(timespec="seconds"))
    Console().print(table)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:  # noqa: PLR2004 - two minutes read better as seconds
        return f"{seconds:.0f} s"
    if seconds < 7200:  # noqa: PLR2004 - two hours read better as minutes
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
