"""The whole system on one machine: cloud services, ingestor, a hub with virtual devices.

Composition root of `tecsa-demo`: the only place that wires hub and cloud together. Everything
runs in this process except PostgreSQL (the embedded server's own processes), over real
protocols: bleak↔bumble for BLE, MQTT to the broker, HTTP to S3, libpq to PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from rich.live import Live
from rich.table import Table

from cloud.config import DatabaseSettings, S3Settings
from cloud.db import add_hub, connect, open_pool, upgrade
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.ports import StoragePorts
from cloud.ingest.service import Broker, Ingestor
from cloud.models.agreement import AgreementMetrics, CloudScorer
from cloud.storage.archive import Archive
from demo.phone import PhoneCheck, SimulatedPhone
from demo.services import Endpoints, services
from demo.triage import TriageCheck, triage_check
from hub.ble.virtual.demo import health_post_devices
from hub.config import (
    IDENTITY_KEY_FILE,
    ApiSettings,
    BleSettings,
    BufferSettings,
    HubSettings,
    IdentitySettings,
    TriageSettings,
    UplinkSettings,
)
from hub.daemon import DaemonOptions, run_hub
from hub.logging import configure_logging
from wire.keys import save_private_key, save_public_key

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from rich.console import Console

BUCKET = "tecsa-demo-archive"
DRAIN_TIMEOUT_S = 180.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What `tecsa-demo` was asked to do."""

    workdir: Path
    duration_s: float | None
    """Run this long, then drain and check; None: until Ctrl-C."""
    devices: int = 6
    measure_every_s: float = 0.5
    visit_s: float = 5.0
    """How long the simulated agent keeps the devices bound to each patient."""
    database_url: str | None = None
    mqtt_url: str | None = None
    s3_url: str | None = None


@dataclass(frozen=True, slots=True)
class Tally:
    """The end-to-end accounting: every reading the hub captured, found once in the cloud."""

    captured: int
    stored: int
    missing: int
    duplicates: int
    delivered: int
    phone: PhoneCheck | None = None
    """The simulated phone's records against the hub's (None before the final check)."""
    triage: TriageCheck | None = None
    """The hub's triage results against the cloud's, and the cloud's scoring of them."""

    @property
    def ok(self) -> bool:
        """Nothing missing or doubled: readings, phone records and triage results in the cloud."""
        return (
            self.missing == 0
            and self.duplicates == 0
            and (self.phone is None or self.phone.ok)
            and (self.triage is None or self.triage.ok)
        )

    def line(self) -> str:
        """The summary line the demo ends with."""
        return (
            f"captured={self.captured} stored={self.stored} "
            f"missing={self.missing} duplicates={self.duplicates}"
        )


async def run_demo(options: DemoOptions, console: Console) -> Tally:
    """Start everything, run, drain, check, stop; return the tally."""
    workdir = options.workdir
    _fresh(workdir / "hub")
    _fresh(workdir / "keys")
    _fresh(workdir / "phone")  # each run is a new hub: its phone starts with an empty queue too
    log_file = (workdir / "demo.log").open("a", encoding="utf-8")
    configure_logging(level="INFO", json=True, stream=log_file)
    hub_id = f"hub-demo-{uuid.uuid4().hex[:6]}"
    console.print(
        f"[bold]TecsaS3 demo[/bold]: hub [cyan]{hub_id}[/cyan]; logs in {workdir / 'demo.log'}"
    )
    try:
        async with services(
            workdir,
            database_url=options.database_url,
            mqtt_url=options.mqtt_url,
            s3_url=options.s3_url,
        ) as ep:
            return await _run(options, console, ep, hub_id)
    finally:
        log_file.close()


async def _run(options: DemoOptions, console: Console, ep: Endpoints, hub_id: str) -> Tally:
    keys = _make_keys(options.workdir / "keys")
    await asyncio.to_thread(upgrade, ep.database_url)
    with connect(ep.database_url) as conn:
        add_hub(conn, hub_id, keys.hub.public_key(), note="tecsa-demo")
    s3 = S3Settings(
        endpoint_url=ep.s3_url,
        bucket=BUCKET,
        access_key_id=SecretStr("demo"),
        secret_access_key=SecretStr("demo"),
    )
    archive = Archive.from_settings(s3)
    await asyncio.to_thread(archive.ensure_bucket)
    _where(console, ep, options.workdir)

    stop_cloud, stop_hub, stop_devices = asyncio.Event(), asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)

    pool = open_pool(
        DatabaseSettings(url=SecretStr(ep.database_url), pool_max=4),
        application_name="tecsa-demo-ingest",
    )
    scorer = CloudScorer(pool, AgreementMetrics(CollectorRegistry()))
    ingestor = Ingestor(
        broker=Broker.from_url(ep.mqtt_url),
        ports=StoragePorts(pool, archive),
        cloud_keys=keys.ingest,
        signing_key=keys.signing,
        metrics=IngestMetrics(CollectorRegistry()),
        share_group=None,  # amqtt has no shared subscriptions; one ingestor
    )
    ingestor.after_stored = scorer.after_stored  # the cloud's full model scores each triage
    hub_settings = _hub_settings(options.workdir, hub_id, ep)
    hub_options = DaemonOptions(
        virtual_devices=options.devices,
        simulate_every_s=options.measure_every_s,
        devices_stop=stop_devices,
    )
    tasks = [
        asyncio.create_task(ingestor.run(stop_cloud), name="ingestor"),
        asyncio.create_task(run_hub(hub_settings, hub_options, stop_hub), name="hub"),
    ]
    # The simulated phone finds the hub by zeroconf on 127.0.0.1, as a real one would.
    phone = _phone(options, keys)
    stop_phone = asyncio.Event()
    phone_task = asyncio.create_task(phone.run(stop_phone), name="phone")
    hub_db = hub_settings.buffer.path
    readings = _counter(hub_db, ep.database_url, hub_id)

    def count() -> Tally:
        return dataclasses.replace(
            readings(),
            phone=phone.check(hub_db, database_url=ep.database_url, hub_id=hub_id),
            triage=triage_check(hub_db, ep.database_url, hub_id),
        )

    started = time.monotonic()
    try:
        with Live(_table(count(), 0.0, "measuring"), console=console, refresh_per_second=4) as live:
            await _until(
                lambda: (
                    interrupted.is_set()
                    or (
                        options.duration_s is not None
                        and time.monotonic() - started >= options.duration_s
                    )
                    or any(t.done() for t in tasks)
                ),
                lambda: live.update(_table(count(), time.monotonic() - started, "measuring")),
            )
            stop_devices.set()
            stop_phone.set()
            drain_started = time.monotonic()
            await _until(
                lambda: (
                    (_drained(count()) and phone_task.done())
                    or time.monotonic() - drain_started > DRAIN_TIMEOUT_S
                    or any(t.done() for t in tasks)
                ),
                lambda: live.update(_table(count(), time.monotonic() - started, "draining")),
            )
            live.update(_table(count(), time.monotonic() - started, "stopping"))
    finally:
        stop_phone.set()
        stop_hub.set()
        stop_cloud.set()
        if not phone_task.done():  # only when the demo failed: a drained phone has returned
            phone_task.cancel()
        tasks.append(phone_task)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(scorer.close)
        pool.close()
        for task, result in zip(tasks, results, strict=True):
            if isinstance(result, BaseException):
                console.print(f"[red]{task.get_name()} failed: {result!r}[/red]")
    return count()


def _phone(options: DemoOptions, keys: DemoKeys) -> SimulatedPhone:
    """The agent's phone; it binds the health post's devices to each patient it sees."""
    devices = health_post_devices(datetime.now(UTC), count=options.devices)
    return SimulatedPhone(
        options.workdir / "phone",
        cloud_signing_key=keys.signing,
        devices=tuple(d.address for d in devices),
        visit_s=options.visit_s,
    )


def _drained(t: Tally) -> bool:
    readings = t.captured > 0 and t.delivered == t.captured and t.stored == t.captured
    phone = t.phone is None or t.phone.ok
    return readings and phone and (t.triage is None or t.triage.settled)


async def _until(done: Callable[[], bool], tick: Callable[[], None]) -> None:
    while not done():
        tick()
        await asyncio.sleep(0.25)


def _counter(hub_db: Path, database_url: str, hub_id: str) -> Callable[[], Tally]:
    """Count the hub's readings and find each of them in PostgreSQL."""

    def count() -> Tally:
        hub_ids, delivered = _hub_readings(hub_db)
        with psycopg.connect(database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT id::text FROM readings WHERE hub_id = %s", (hub_id,)
            ).fetchall()
        cloud_ids = [r[0] for r in rows]
        unique = set(cloud_ids)
        stored = len(hub_ids & unique)
        duplicates = (len(cloud_ids) - len(unique)) + len(unique - hub_ids)
        return Tally(len(hub_ids), stored, len(hub_ids) - stored, duplicates, delivered)

    return count


def _hub_readings(hub_db: Path) -> tuple[set[str], int]:
    if not hub_db.exists():
        return set(), 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{hub_db}?mode=ro", uri=True)) as conn:
            ids = {row[0] for row in conn.execute("SELECT id FROM readings")}
            (delivered,) = conn.execute(
                "SELECT count(*) FROM readings WHERE delivered_at IS NOT NULL"
            ).fetchone()
    except sqlite3.Error:
        return set(), 0
    return ids, int(delivered)


def _table(t: Tally, elapsed: float, phase: str) -> Table:
    phone = t.phone or PhoneCheck(0, 0, 0, 0)
    triage = t.triage or TriageCheck()
    table = Table(title=f"TecsaS3 demo: {phase} ({elapsed:4.0f} s)", expand=False)
    table.add_column("readings", justify="left")
    table.add_column("", justify="right")
    table.add_column("phone records", justify="left")
    table.add_column("", justify="right")
    table.add_column("triage", justify="left")
    table.add_column("", justify="right")
    rows = (
        ("captured at the hub", t.captured, "queued", phone.pending, "on the hub", triage.on_hub),
        ("delivered (acked)", t.delivered, "synced", phone.synced, "high", triage.high),
        ("stored in the cloud", t.stored, "in the cloud", phone.in_cloud, "in the cloud",
         triage.in_cloud),
        ("missing", t.missing, "", "", "judged by the cloud", triage.scored),
        ("duplicates", t.duplicates, "", "", "  of which scored", triage.model_scored),
    )  # fmt: skip
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


def _where(console: Console, ep: Endpoints, workdir: Path) -> None:
    console.print(f"  PostgreSQL: {ep.database_url}  (table readings)")
    console.print(f"  MQTT:       {ep.mqtt_url}")
    console.print(
        f"  S3:         {ep.s3_url}  bucket {BUCKET} (raw/<hub>/<yyyy>/<mm>/<dd>/<batch>)"
    )
    console.print(f"  hub buffer: {workdir / 'hub' / 'buffer.sqlite3'}")
    embedded = ", ".join(ep.embedded) or "none"
    console.print(f"  started here: {embedded}")


@dataclass(frozen=True, slots=True)
class DemoKeys:
    """The hub's identity and the cloud's two keys, made fresh for each run."""

    hub: Ed25519PrivateKey
    ingest: X25519PrivateKey
    signing: Ed25519PrivateKey


def _make_keys(directory: Path) -> DemoKeys:
    keys = DemoKeys(
        Ed25519PrivateKey.generate(), X25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    )
    save_private_key(keys.hub, directory / IDENTITY_KEY_FILE)
    save_public_key(keys.ingest, directory / "cloud-ingest.pub.pem")
    save_public_key(keys.signing, directory / "cloud-signing.pub.pem")
    return keys


def _hub_settings(workdir: Path, hub_id: str, ep: Endpoints) -> HubSettings:
    keys = workdir / "keys"
    return HubSettings(
        identity=IdentitySettings(
            hub_id=hub_id,
            key_dir=keys,
            cloud_ingest_key=keys / "cloud-ingest.pub.pem",
            cloud_signing_key=keys / "cloud-signing.pub.pem",
        ),
        buffer=BufferSettings(path=workdir / "hub" / "buffer.sqlite3"),
        uplink=UplinkSettings(
            broker_url=ep.mqtt_url, batch_max_items=200, batch_max_age_s=1.0, ack_timeout_s=15.0
        ),
        ble=BleSettings(max_connections=8, idle_disconnect_s=5.0),
        api=ApiSettings(host="127.0.0.1", port=_free_port()),
        # Steady vitals are rescored every 10 s, not every 5 min, so the run ends within a minute.
        triage=TriageSettings(rescore_s=10.0),
    )


def _fresh(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    os.chmod(directory, 0o700)  # noqa: PTH101 - keys live below


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
