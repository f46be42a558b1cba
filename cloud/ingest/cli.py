"""`tecsa-cloud ingest` and `tecsa-cloud replay`: command functions the lead mounts on the app.

    app.command("ingest")(ingest_command)
    app.command("replay")(replay_command)

Both read the TECSA_CLOUD_* configuration; errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, NoReturn

import typer
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cloud.config import load_cloud_settings
from cloud.db import check_schema, connect
from cloud.errors import CloudError
from cloud.ingest.log import configure_logging
from cloud.ingest.main import METRICS_PORT, run_ingestor
from cloud.ingest.replay import count_archived, replay_archive
from cloud.storage.archive import Archive, ArchivedObject
from wire.errors import WireError
from wire.keys import load_private_key


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def ingest_command(
    metrics_port: Annotated[
        int,
        typer.Option(
            envvar="TECSA_CLOUD_INGEST_METRICS_PORT",
            min=0,
            max=65535,
            help="Serve Prometheus metrics on this port (0: none).",
        ),
    ] = METRICS_PORT,
    log_level: Annotated[
        str, typer.Option(envvar="TECSA_CLOUD_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR.")
    ] = "INFO",
) -> None:
    """Consume sealed batches from the broker into S3 and PostgreSQL, and ack each one.

    Subscribes to $share/<TECSA_CLOUD_MQTT__SHARE_GROUP>/tecsa/v1/hubs/+/up/batch (plain filter
    when the share group is empty), so any number of ingestors split the load. Refuses to start
    unless the database schema is current (tecsa-cloud db upgrade) and both cloud keys load.
    Stops cleanly on SIGTERM or Ctrl-C: the batch in hand is finished, never acked uncommitted.
    """
    configure_logging(level=log_level)
    try:
        run_ingestor(load_cloud_settings(), metrics_port=metrics_port or None)
    except (CloudError, WireError, OSError) as exc:
        _fail(str(exc))


def replay_command(
    hub: Annotated[
        str | None, typer.Option(help="Replay only this hub's batches.", show_default=False)
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="Replay only batches dated (by batch id, UTC) on or after YYYY-MM-DD.",
            show_default=False,
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL URL (default: TECSA_CLOUD_DATABASE__URL).", show_default=False
        ),
    ] = None,
) -> None:
    """Rebuild PostgreSQL from the S3 archive; what is stored already is skipped.

    Enroll the hubs first (tecsa-cloud hubs add) when replaying into a new database. Safe to
    interrupt and to run again. Exits 1 when some batch could not be replayed.
    """
    console = Console(stderr=True)
    day: date | None = since.date() if since else None
    try:
        settings = load_cloud_settings()
        ingest_key = load_private_key(settings.keys.ingest_key, X25519PrivateKey)
        archive = Archive.from_settings(settings.s3)
        url = database_url or settings.database.url.get_secret_value()
        with connect(url) as conn:
            check_schema(conn)
            total = count_archived(archive, hub_id=hub, since=day)
            with Progress(
                TextColumn("replay"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeRemainingColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("replay", total=total, counts="")
                seen = {"stored": 0, "duplicate": 0, "failed": 0}

                def advance(_obj: ArchivedObject, status: str) -> None:
                    seen[status] += 1
                    text = " ".join(f"{k}={v}" for k, v in seen.items())
                    progress.update(task, advance=1, counts=text)

                summary = replay_archive(
                    archive, conn, cloud_keys=ingest_key, hub_id=hub, since=day, on_batch=advance
                )
    except (CloudError, WireError) as exc:
        _fail(str(exc))
    for key, reason in summary.failures:
        typer.echo(f"failed: {key}: {reason}", err=True)
    typer.echo(summary.line())
    if summary.failed:
        raise typer.Exit(1)
