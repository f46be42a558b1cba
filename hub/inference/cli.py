"""`tecsa-hub triage`: check a score by hand, exactly as the hub computes it."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hub.buffer import queries
from hub.buffer.cli import DEFAULT_DB
from hub.buffer.errors import HubBufferError, translate
from hub.buffer.schema import open_reader
from wire.items import RiskBand, TriageResult
from wire.news2 import Consciousness, InvalidVital, Vitals, score

triage_app = typer.Typer(
    help="Triage tools: the hub's recent triage results; NEWS2 for a set of vitals by hand.",
    no_args_is_help=True,
)


@triage_app.callback()
def _group() -> None:
    """Triage tools: the hub's recent triage results; NEWS2 for a set of vitals by hand."""


@triage_app.command(
    help=(
        "Compute the National Early Warning Score 2 (RCP 2017) and print it as JSON: "
        '{"score": N, "band": "low|low_medium|medium|high", "subscores": {...}, '
        '"complete": true|false, "missing": [...]}.\n\n'
        "Leave out what was not measured: the result is then marked incomplete (its band is a "
        "lower bound), never presented as complete. --scale 2 is only for patients whose "
        "clinician prescribed a target SpO2 of 88-92 % (hypercapnic respiratory failure).\n\n"
        "Example:\n\n"
        "  tecsa-hub triage news2 --resp-rate 22 --spo2 93 --scale 1 --oxygen --systolic 105 "
        "--pulse 115 --consciousness A --temp 38.5\n\n"
        "Exit status: 0 scored; 2 a value is impossible or contradictory (the reason is on stderr)."
    )
)
def news2(
    resp_rate: float | None = typer.Option(None, "--resp-rate", help="Breaths per minute."),
    spo2: float | None = typer.Option(None, "--spo2", help="Oxygen saturation, %."),
    scale: int = typer.Option(
        1, "--scale", min=1, max=2, help="SpO2 scale: 1, or 2 if prescribed."
    ),
    oxygen: bool | None = typer.Option(
        None, "--oxygen/--air", help="On supplemental oxygen, or breathing air."
    ),
    systolic: float | None = typer.Option(None, "--systolic", help="Systolic BP, mmHg."),
    pulse: float | None = typer.Option(None, "--pulse", help="Pulse, beats per minute."),
    consciousness: Consciousness | None = typer.Option(
        None, "--consciousness", help="ACVPU: A alert, C new confusion, V voice, P pain, U none."
    ),
    temp: float | None = typer.Option(None, "--temp", help="Temperature, degrees Celsius."),
) -> None:
    """Compute NEWS2 and print it as JSON."""
    try:
        result = score(
            Vitals(
                respiration_rate=resp_rate,
                spo2=spo2,
                spo2_scale=scale,
                on_oxygen=oxygen,
                systolic=systolic,
                pulse=pulse,
                consciousness=consciousness,
                temperature=temp,
            )
        )
    except InvalidVital as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    out = dataclasses.asdict(result) | {"band": result.band.value, "missing": list(result.missing)}
    typer.echo(json.dumps(out))


@triage_app.command()
def recent(
    band: RiskBand | None = typer.Option(
        None, "--band", help="Only results at or above this band (high: the alerts)."
    ),
    patient: str | None = typer.Option(None, "--patient", help="Only this patient's results."),
    limit: int = typer.Option(20, "--limit", min=1, max=10_000, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array for scripts."),
    db: Path = typer.Option(
        DEFAULT_DB, "--db", dir_okay=False, help="The buffer file (the `buffer.path` setting)."
    ),
) -> None:
    """Show the hub's newest triage results: band, NEWS2, model version, readings scored.

    The band is the higher of NEWS2's and the model's (the model may escalate, never lower);
    "incomplete" means some vital was not measured, so the band is a lower bound. Opens the
    buffer read-only: safe while the daemon runs.

    Example: tecsa-hub triage recent --band high

    Example: tecsa-hub triage recent --patient pat-17 --limit 5 --json

    Exit status: 0 listed (possibly nothing); 1 the buffer cannot be read (reason on stderr).
    """
    try:
        with closing(open_reader(db)) as conn:
            rows = queries.recent_triage(
                conn,
                limit=limit,
                min_band=band.value if band is not None else None,
                patient_id=patient,
            )
    except sqlite3.Error as exc:
        _fail(translate(exc, f"reading {db}"))
    except HubBufferError as exc:
        _fail(exc)
    results = [TriageResult.model_validate_json(row) for row in rows]
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
        return
    table = Table(title=f"triage results in {db} (newest first)")
    for column in ("computed at", "patient", "band", "NEWS2", "model", "score", "readings"):
        table.add_column(column)
    for r in results:
        news2 = f"{r.news2_score}" + ("" if r.complete else " incomplete")
        style = "bold red" if r.band is RiskBand.HIGH else ""
        table.add_row(
            r.computed_at.isoformat(timespec="seconds"),
            escape(r.patient_id or "-"),
            f"[{style}]{r.band.value}[/{style}]" if style else r.band.value,
            news2,
            escape(r.model_version),
            f"{r.score:.3f}",
            str(len(r.reading_ids)),
        )
    Console().print(table)


def _fail(error: HubBufferError) -> NoReturn:
    Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}")
    raise typer.Exit(code=1)
