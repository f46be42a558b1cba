"""`tecsa-cloud models …`: publish signed triage model releases and roll them out to hubs."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path  # noqa: TC003 - typer reads the annotations at run time
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.commands.errors import BrokerUnavailable
from cloud.config import load_cloud_settings
from cloud.db.connection import connect
from cloud.db.hubs import get_hub
from cloud.errors import CloudError
from cloud.models.agreement_cli import agreement_command, score_command
from cloud.models.releases import (
    ReleaseArchive,
    get_release,
    list_releases,
    publish,
    push_release,
    record_rollout,
)
from wire.errors import WireError
from wire.keys import load_private_key
from wire.releases import open_release

if TYPE_CHECKING:
    from collections.abc import Iterator

models_app = typer.Typer(name="models", no_args_is_help=True, add_completion=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@models_app.callback()
def models_group() -> None:
    """Signed triage model releases: publish one, list them, roll one out to hubs.

    A release is the int8 model and its manifest (version, checksum, metrics, training data
    digest, self-test vectors), signed with the cloud signing key (TECSA_CLOUD_KEYS__SIGNING_KEY).
    It is stored once in S3 under models/<version>/release and recorded in PostgreSQL; a rollout
    sends it to hubs on down/cmd. Hubs verify the signature and checksum and run the self-test
    before they switch (docs/models/rollout.md).
    """


@models_app.command("publish")
def publish_command(
    artifact_dir: Annotated[
        Path,
        typer.Argument(
            help="A model's artifact directory, e.g. cloud/models/artifacts/<version>/ "
            "(int8 .tflite + manifest.json).",
            file_okay=False,
        ),
    ],
) -> None:
    """Build, sign, archive (write-once) and record a release of the model in ARTIFACT_DIR.

    Publishing the same version again is a no-op; a different model under a published version
    is refused. Prints the recorded release as JSON.

    Example: tecsa-cloud models publish cloud/models/artifacts/triage-1
    """
    with _errors():
        settings = load_cloud_settings()
        key = load_private_key(settings.keys.signing_key, Ed25519PrivateKey)
        archive = ReleaseArchive.from_settings(settings.s3)
        with connect(settings.database.url.get_secret_value()) as conn:
            release = publish(conn, archive, artifact_dir, key, now=datetime.now(UTC))
    typer.echo(json.dumps(asdict(release), default=str, indent=2))


@models_app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """Show published releases, newest first: version, when, checksum, feature spec, metrics.

    Example: tecsa-cloud models list --json
    """
    with _errors():
        settings = load_cloud_settings()
        with connect(settings.database.url.get_secret_value()) as conn:
            releases = list_releases(conn)
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in releases], default=str, indent=2))
        return
    if not releases:
        typer.echo("no model release published yet (tecsa-cloud models publish ARTIFACT_DIR)")
    for r in releases:
        metrics = " ".join(f"{k}={v:.3g}" for k, v in sorted(r.metrics.items())[:4])
        typer.echo(
            f"{r.version:24} {r.published_at:%Y-%m-%d %H:%M} {r.artifact_sha256[:12]} "
            f"features={r.feature_spec} {metrics}"
        )


@models_app.command("rollout")
def rollout_command(
    version: Annotated[str, typer.Argument(help="A published version (tecsa-cloud models list).")],
    hub: Annotated[str | None, typer.Option("--hub", help="Send to this hub only.")] = None,
    all_hubs: Annotated[bool, typer.Option("--all", help="Send to every active hub.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the release to this file instead of pushing it (for a hub that is "
            "reached by hand: `tecsa-hub models install FILE`).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Roll a published release out to one hub (--hub ID) or to every active hub (--all).

    The release is read back from S3 and verified with the signing key first, then sent as a
    signed `model_release` command on each hub's down/cmd topic (QoS 1). Each hub verifies the
    signature and checksum, runs the self-test and switches atomically, keeping the previous
    model; it reports the version it runs in up/status. A hub that refuses keeps its model.

    Exit status: 0 sent; 2 unknown release or hub, or the release does not verify; 3 the
    broker is unreachable (the commands stay recorded; run the rollout again).

    Example: tecsa-cloud models rollout triage-v2 --hub hub-nairobi-01
    """
    if (hub is None) == (not all_hubs):
        _fail("give exactly one of --hub ID or --all")
    with _errors():
        settings = load_cloud_settings()
        key = load_private_key(settings.keys.signing_key, Ed25519PrivateKey)
        with connect(settings.database.url.get_secret_value()) as conn:
            if get_release(conn, version) is None:
                _fail(f"release {version} is not published (tecsa-cloud models list)")
            if hub is not None and get_hub(conn, hub) is None:
                _fail(f"hub {hub} is not registered (tecsa-cloud hubs list)")
            sealed = ReleaseArchive.from_settings(settings.s3).get(version)
            open_release(sealed, cloud_key=key.public_key())
            now = datetime.now(UTC)
            if out is not None:
                out.write_bytes(sealed)
                record_rollout(conn, version, hub_id=hub, via="file", now=now)
                report: dict[str, object] = {"version": version, "file": str(out)}
            else:
                try:
                    hubs = push_release(
                        conn, sealed, key=key, mqtt=settings.mqtt, hub_id=hub, now=now
                    )
                except BrokerUnavailable as exc:
                    _fail(f"{exc}; the commands are recorded, run the rollout again", code=3)
                report = {"version": version, "hubs": hubs}
    typer.echo(json.dumps(report))


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (CloudError, WireError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.filename or 'file'}: {exc.strerror}")


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


# Edge/cloud agreement and the backfill of the cloud's scoring (cloud/models/agreement_cli.py).
models_app.command("agreement")(agreement_command)
models_app.command("score")(score_command)
