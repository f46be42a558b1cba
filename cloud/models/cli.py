"""`python -m cloud.models`: train the triage model, re-check its evaluation, rewrite its card."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cloud.models import cohort, pipeline

models_app = typer.Typer(
    help=(
        "The triage model pipeline (SYNTHETIC data only). `train` needs the [train] extra "
        "(make train creates .venv-train); `evaluate` and `card` run anywhere LiteRT is installed."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@models_app.callback()
def _group() -> None:
    """The triage model pipeline (synthetic data only)."""


@models_app.command(
    help=(
        "Generate the seeded synthetic cohort, train the MLP with tensorflow-cpu, convert it to "
        "int8 and float LiteRT, evaluate both on a held-out synthetic cohort and write "
        f"cloud/models/artifacts/{pipeline.VERSION}/ and docs/models/{pipeline.VERSION}.md.\n\n"
        "Example: make train   (or: .venv-train/bin/python -m cloud.models train)\n\n"
        "Exit status: 0 written; 2 tensorflow is not installed (use make train)."
    )
)
def train(
    seed: int = typer.Option(cohort.TRAIN_SEED, help="Seed of the training cohort."),
    patients: int = typer.Option(pipeline.TRAIN_PATIENTS, min=1000, help="Training patients."),
    out: Path = typer.Option(pipeline.ARTIFACTS, help="Directory of model versions."),
    card: Path = typer.Option(pipeline.CARD, help="Where to write the model card."),
) -> None:
    """Train, convert, evaluate and write the artifacts and the card."""
    try:
        import tensorflow as tf  # noqa: F401, PLC0415 - only to give a clear error
    except ImportError:
        typer.echo("error: tensorflow is not installed: run `make train`", err=True)
        raise typer.Exit(2) from None
    manifest = pipeline.train_and_write(seed=seed, patients=patients, out=out, card=card)
    print(json.dumps({"version": manifest["version"], "metrics": manifest["metrics"]}, indent=2))


@models_app.command(
    help=(
        "Re-run the committed models on the held-out synthetic cohort and print the figures as "
        "JSON, next to the ones the manifest recorded (they must match: nothing trains here).\n\n"
        "Example: .venv/bin/python -m cloud.models evaluate"
    )
)
def evaluate(
    directory: Path = typer.Option(
        pipeline.ARTIFACTS / pipeline.VERSION, help="A model version's artifact directory."
    ),
) -> None:
    """Recompute the evaluation of committed artifacts."""
    recorded = json.loads((directory / pipeline.MANIFEST_FILE).read_text())
    fresh = pipeline.evaluate_artifacts(directory)
    same = fresh["metrics"] == recorded["metrics"]
    print(json.dumps({"metrics": fresh["metrics"], "matches_manifest": same}, indent=2))
    if not same:
        raise typer.Exit(1)


@models_app.command(
    help=(
        "Rewrite the model card from a committed manifest (after editing the card template).\n\n"
        "Example: .venv/bin/python -m cloud.models card"
    )
)
def card(
    directory: Path = typer.Option(pipeline.ARTIFACTS / pipeline.VERSION, help="Artifacts."),
    out: Path = typer.Option(pipeline.CARD, help="Where to write the card."),
) -> None:
    """Rewrite the model card."""
    from cloud.models.card import write_card  # noqa: PLC0415 - small, but only when asked

    write_card(json.loads((directory / pipeline.MANIFEST_FILE).read_text()), out)
    print(out)
