"""`tecsa-hub triage`: check a score by hand, exactly as the hub computes it."""

from __future__ import annotations

import dataclasses
import json

import typer

from hub.inference.news2 import Consciousness, InvalidVital, Vitals, score

triage_app = typer.Typer(
    help="Triage tools: compute NEWS2 for a set of vitals, as the hub does.", no_args_is_help=True
)


@triage_app.callback()
def _group() -> None:
    """Triage tools: compute NEWS2 for a set of vitals, as the hub does."""


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
