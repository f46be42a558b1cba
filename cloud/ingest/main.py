"""The ingestor's composition root: config once, keys from files, pool, archive, metrics, run."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from prometheus_client import CollectorRegistry, start_http_server

from cloud.commands.sync import CommandResync, ResyncMetrics
from cloud.db import check_schema, connect, ensure_partitions_around, open_pool, pooled
from cloud.errors import ConfigError
from cloud.ingest.failpoints import failpoint_from_env
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.ports import StoragePorts
from cloud.ingest.service import Broker, Ingestor
from cloud.models.agreement import AgreementMetrics, CloudScorer
from cloud.models.releases import ReleaseArchive
from cloud.storage.archive import Archive
from wire.keys import key_id, load_private_key

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from psycopg_pool import ConnectionPool

    from cloud.config import CloudSettings

log = structlog.get_logger("cloud.ingest")

PARTITION_MONTHS_AHEAD = 3
METRICS_PORT = 9108
METRICS_ADDR = "0.0.0.0"  # noqa: S104 - Prometheus scrapes the ingestor from another host


def partitions_ahead(
    pool: ConnectionPool, *, months: int = PARTITION_MONTHS_AHEAD
) -> Callable[[], None]:
    """Housekeeping: make sure the current and next `months` monthly partitions exist."""

    def chore() -> None:
        with pooled(pool) as conn:
            created = ensure_partitions_around(conn, datetime.now(UTC), ahead=months)
        if created:
            log.info("partitions_created", partitions=created)

    return chore


def run_ingestor(
    settings: CloudSettings,
    *,
    metrics_port: int | None = METRICS_PORT,
    metrics_addr: str = METRICS_ADDR,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Check the schema, build the components from `settings` and consume until SIGTERM/SIGINT.

    Raises `CloudError` (a `ConfigError`, `SchemaError`, `DatabaseUnavailable`, ...) or
    `WireError` (a key file) before consuming anything when something is not right.
    """
    environ = os.environ if environ is None else environ
    try:
        failpoint = failpoint_from_env(environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    ingest_key = load_private_key(settings.keys.ingest_key, X25519PrivateKey)
    signing_key = load_private_key(settings.keys.signing_key, Ed25519PrivateKey)
    with connect(settings.database.url.get_secret_value()) as conn:
        check_schema(conn)
    mqtt = settings.mqtt
    broker = Broker.from_url(
        mqtt.broker_url,
        username=mqtt.username,
        password=None if mqtt.password is None else mqtt.password.get_secret_value(),
    )
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    if metrics_port:
        start_http_server(metrics_port, addr=metrics_addr, registry=registry)
    pool = open_pool(settings.database, application_name="tecsa-ingest")
    try:
        ingestor = Ingestor(
            broker=broker,
            ports=StoragePorts(pool, Archive.from_settings(settings.s3)),
            cloud_keys=ingest_key,
            signing_key=signing_key,
            metrics=metrics,
            share_group=mqtt.share_group,
            failpoint=failpoint,
            housekeeping=partitions_ahead(pool),
        )
        # The full model scores what hubs triaged, in its own thread, after each stored batch:
        # never on the ack's path (docs/models/agreement.md).
        scorer = CloudScorer(pool, AgreementMetrics(registry))
        ingestor.after_stored = scorer.after_stored
        # A hub whose status shows it missed a command gets the current one again, once per
        # cooldown, in its own thread (docs/commands.md, "Catching up").
        resync = CommandResync(
            pool,
            key=signing_key,
            mqtt=mqtt,
            metrics=ResyncMetrics(registry),
            releases=ReleaseArchive.from_settings(settings.s3).get,
        )
        ingestor.on_status = resync.offer
        log.info(
            "ingest_starting",
            broker=f"{broker.host}:{broker.port}",
            share_group=mqtt.share_group or None,
            bucket=settings.s3.bucket,
            ingest_key=key_id(ingest_key),
            signing_key=key_id(signing_key),
            metrics_port=metrics_port or None,
            failpoint=environ.get("TECSA_FAILPOINT") or None,
        )
        try:
            asyncio.run(_serve(ingestor))
        finally:
            scorer.close()
            resync.close()
    finally:
        pool.close()


async def _serve(ingestor: Ingestor) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await ingestor.run(stop)
