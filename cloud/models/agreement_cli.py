"""`tecsa-cloud models agreement | score`: edge/cloud agreement per model version, and backfill.

Registered on the `models` group by cloud/models/release_cli.py. Exit status: 0 fine; 1 a
version's agreement is below the threshold (`agreement` only); 2 bad input or an error
(`error: ...` on stderr, the one error shape of the cloud's commands).
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from cloud.config import load_cloud_settings
from cloud.db.connection import connect
from cloud.errors import CloudError
from cloud.models.agreement import DEFAULT_THRESHOLD, agreement
from cloud.models.full import BATCH_SIZE, ModelShelf, score_pending

if TYPE_CHECKING:
    from collections.abc import Iterator

_DURATION = re.compile(r"^(?P<n>\d+)(?P<unit>[smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

SinceOption = Annotated[
    str,
    typer.Option(
        "--since",
        help="Window start: a duration back from now (30m, 24h, 7d, 2w) or an ISO date/time "
        "(2026-11-01, 2026-11-01T08:00:00+00:00). Compared with the hub's triage time.",
    ),
]


def parse_since(text: str, *, now: datetime) -> datetime:
    """The instant `text` designates: `now` minus a duration, or an ISO date/time (UTC if naive).

    Raises ValueError with a message for the operator.
    """
    if match := _DURATION.match(text.strip()):
        return now - timedelta(**{_UNITS[match["unit"]]: int(match["n"])})
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected a duration like 7d, 24h, 30m or an ISO date/time"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def agreement_command(
    version: Annotated[
        str | None, typer.Option("--version", help="Only this model version.")
    ] = None,
    since: SinceOption = "7d",
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            help="Alert below this share of agreeing results (exit status 1).",
        ),
    ] = DEFAULT_THRESHOLD,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """How often the hubs' int8 triage agrees with the cloud's float model, per model version.

    For the triage results hubs computed since --since and the cloud scored (`tecsa-cloud
    models score`, or the ingestor as batches arrive): the count, the share where the edge's
    final band equals the cloud's, and the disagreements by band pair (edge->cloud). Results the
    cloud could not score (readings missing, unknown model, NEWS2 only) and those whose inputs it
    could not rebuild exactly (input_mismatch: the hub also used observations or the age) are
    counted apart. Exit status 1 when a version is below --threshold.

    Example: tecsa-cloud models agreement --since 7d --threshold 0.99
    """
    with _errors():
        start = parse_since(since, now=datetime.now(UTC))
        settings = load_cloud_settings()
        with connect(settings.database.url.get_secret_value()) as conn:
            rows = agreement(conn, since=start, version=version)
    below = [r for r in rows if r.below(threshold)]
    if as_json:
        typer.echo(
            json.dumps(
                {"since": start.isoformat(), "versions": [r.as_json(threshold) for r in rows]},
                indent=2,
            )
        )
    elif not rows:
        typer.echo(
            f"no scored triage results since {start:%Y-%m-%d %H:%M} UTC"
            " (tecsa-cloud models score scores what is pending)"
        )
    for r in [] if as_json else rows:
        share = "n/a" if r.agreement is None else f"{r.agreement:.4f}"
        flag = "  BELOW THRESHOLD" if r.below(threshold) else ""
        typer.echo(
            f"{r.version:24} scored={r.scored} agreement={share} not_scorable={r.not_scorable} "
            f"input_mismatch={r.input_mismatch}{flag}"
        )
        for pair, n in r.disagreements.items():
            typer.echo(f"    {pair}: {n}")
    if below:
        raise typer.Exit(1)


def score_command(
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only results the hubs computed since then (duration like 7d or ISO date); "
            "default: everything not scored yet.",
        ),
    ] = None,
    retry_missing: Annotated[
        bool,
        typer.Option(
            "--retry-missing",
            help="Also retry now every result recorded as not scorable because its readings, "
            "records or model version's artifacts were missing (the scorer retries missing "
            "readings and records by itself, with a growing wait; this does not wait).",
        ),
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=10000, help="Results per transaction.")
    ] = BATCH_SIZE,
) -> None:
    """Score the stored triage results the cloud has not scored yet (backfill); idempotent.

    The ingestor scores new results as their batches arrive; this catches up on what it missed
    (it was down, the database was busy, a model's artifacts were not installed yet). Running it
    twice scores nothing twice. Prints what it did as JSON.

    Example: tecsa-cloud models score --since 30d --retry-missing
    """
    with _errors():
        now = datetime.now(UTC)
        start = None if since is None else parse_since(since, now=now)
        settings = load_cloud_settings()
        with connect(settings.database.url.get_secret_value()) as conn:
            report = score_pending(
                conn,
                ModelShelf(),
                now=now,
                since=start,
                batch_size=batch_size,
                retry_missing=retry_missing,
            )
    typer.echo(
        json.dumps(
            {
                "scored": report.scored,
                "agreed": report.agreed,
                "not_scorable": report.not_scorable,
                "total": report.total,
            }
        )
    )


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except CloudError as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
