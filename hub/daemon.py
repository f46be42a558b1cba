"""The hub daemon's composition root: config loaded once, one asyncio loop, SIGTERM drains.

`tecsa-hub run` calls `serve`. Each component gets its own sub-config. The BLE central is kept
alive on its own: a hub without a working Bluetooth adapter still buffers and forwards what phones
bring, so a missing adapter is logged and retried, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import signal
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub import __version__
from hub.api.app import ApiContext, HubStatus, StoredRecord, create_app
from hub.api.server import serve_api
from hub.api.tls import ensure_certificate
from hub.ble.central import Backends, Central
from hub.ble.errors import BleError
from hub.ble.profiles import default_profiles_dir, load_profiles
from hub.buffer import Buffer, BufferConfig
from hub.commands import CommandHandler, RevokedTokens, plans_handler
from hub.config import IDENTITY_KEY_FILE
from hub.discovery import Discovery, HubRecord, PhoneSeen
from hub.discovery.addresses import is_ipv4, resolve
from hub.inference.engine import EngineConfig, TriageEngine
from hub.models.holder import ModelHolder, ModelService, model_release_handler
from hub.models.store import ModelStore, choose_default
from hub.uplink import UplinkConfig, UplinkKeys, UplinkService
from wire.commands import CommandKind
from wire.errors import WireError
from wire.keys import load_public_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from hub.api.tls import TlsIdentity
    from hub.config import DiscoverySettings, HubSettings

MIB = 1024 * 1024
BLE_RETRY_S = 60.0


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """How to run beyond the config: with virtual devices instead of the adapter (demo, tests)."""

    virtual_devices: int = 0
    """How many virtual devices to put on an in-process radio; 0 uses the Bluetooth adapter."""
    simulate_every_s: float | None = None
    """With virtual devices: one of them measures every this many seconds; None: they stay idle."""
    seed: int = 1
    devices_stop: asyncio.Event | None = None
    """Set it to stop the simulated measurements while the hub keeps running (the demo drains)."""


def buffer_config(settings: HubSettings) -> BufferConfig:
    """The buffer's own config from the hub settings."""
    b = settings.buffer
    return BufferConfig(
        path=b.path,
        synchronous=b.synchronous,
        max_unsent_bytes=b.max_unsent_mb * MIB,
        retention=timedelta(days=b.retention_days),
    )


async def run_hub(settings: HubSettings, options: DaemonOptions, stop: asyncio.Event) -> None:
    """Run every component until `stop` is set, then stop them and close the buffer cleanly."""
    log = structlog.get_logger("hub")
    settings.buffer.path.parent.mkdir(parents=True, exist_ok=True)
    profiles = load_profiles(settings.ble.profiles_dir or default_profiles_dir())
    buffer = Buffer.open(buffer_config(settings))
    try:
        async with contextlib.AsyncExitStack() as stack:
            tasks: list[asyncio.Task[object]] = []
            backends = None
            if options.virtual_devices:
                backends, simulating = await _virtual_devices(stack, options, stop)
                tasks += simulating
            revoked = RevokedTokens(buffer)
            revoked.refresh()
            holder, models = await asyncio.to_thread(_build_models, settings)
            commands = _build_commands(settings, buffer, revoked, models)
            uplink = _build_uplink(settings, buffer, commands, holder)
            if commands is not None and uplink is not None:
                commands.on_applied = lambda _command: uplink.refresh_status()
            if uplink is not None:
                tasks.append(asyncio.create_task(uplink.run()))
                # the model loads at first use, in triage's thread: report it if another is in use
                holder.on_change = _threadsafe(uplink.refresh_status)
            api = _build_api(settings, buffer, revoked)
            if api is not None:
                app, tls = api
                tasks.append(
                    asyncio.create_task(
                        serve_api(
                            app, host=settings.api.host, port=settings.api.port, tls=tls, stop=stop
                        )
                    )
                )
                discovery, following = await _start_discovery(settings, tls, buffer, stop)
                stack.push_async_callback(discovery.close)
                tasks += following
            tasks += _start_triage(settings, buffer, holder, stop)
            tasks += _follow_models(models, uplink, stop)
            if settings.ble.enabled:
                central = Central(
                    profiles=profiles, buffer=buffer, settings=settings.ble, backends=backends
                )
                tasks.append(asyncio.create_task(_keep_ble_running(central, stop)))
            log.info(
                "hub_started",
                hub_id=settings.identity.hub_id,
                buffer=str(settings.buffer.path),
                profiles=len(profiles),
                virtual_devices=options.virtual_devices,
            )
            await stop.wait()
            log.info("hub_stopping")
            if options.devices_stop is not None:
                options.devices_stop.set()
            if uplink is not None:
                uplink.request_stop()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        buffer.close()
        log.info("hub_stopped")


async def _virtual_devices(
    stack: contextlib.AsyncExitStack, options: DaemonOptions, stop: asyncio.Event
) -> tuple[Backends, list[asyncio.Task[object]]]:
    """An in-process radio with the health post's virtual devices, and their measuring task."""
    from hub.ble.bumble_backend import VirtualRadio  # noqa: PLC0415 - demo/test only
    from hub.ble.virtual.demo import health_post_devices, simulate  # noqa: PLC0415

    radio = await stack.enter_async_context(VirtualRadio())
    devices = health_post_devices(datetime.now(UTC), count=options.virtual_devices)
    for device in devices:
        await radio.add(device)
    backends = Backends(radio.scanner_backend, radio.client_backend)
    if not options.simulate_every_s:
        return backends, []
    rng = random.Random(options.seed)  # noqa: S311 - simulated measurements
    measuring = simulate(
        devices, stop=options.devices_stop or stop, interval_s=options.simulate_every_s, rng=rng
    )
    return backends, [asyncio.create_task(measuring)]


def _build_api(
    settings: HubSettings, buffer: Buffer, revoked: RevokedTokens
) -> tuple[FastAPI, TlsIdentity] | None:
    """The phones' API and its certificate, or None (logged) when disabled or unconfigured."""
    log = structlog.get_logger("hub.api")
    if not settings.api.enabled:
        log.warning("api_disabled", reason="api.enabled is false")
        return None
    identity = settings.identity
    try:
        cloud_key = load_public_key(identity.cloud_signing_key, Ed25519PublicKey)
    except WireError as exc:
        log.error("api_disabled", reason=str(exc), fix="install the cloud's signing public key")
        return None
    tls = ensure_certificate(
        identity.key_dir,
        hub_id=identity.hub_id,
        now=datetime.now(UTC),
        addresses=resolve(settings.discovery.interfaces),
    )

    def status() -> HubStatus:
        return HubStatus(
            backlog=buffer.uplink_status().unsent,
            at_capacity=buffer.at_capacity,
            capacity_hours_left=buffer.capacity_hours_left(),
        )

    app = create_app(
        ApiContext(
            hub_id=identity.hub_id,
            cloud_signing_key=cloud_key,
            revoked=revoked,  # in memory, refreshed when a list arrives on down/cmd
            status=status,
            at_capacity=lambda: buffer.at_capacity,
            sync_records=buffer.sync_records,
            record_versions=lambda rid: [
                StoredRecord(rec, conflict) for rec, conflict in buffer.record_versions_flagged(rid)
            ],
            plans=buffer.plans,
            plans_version=buffer.plans_version,
            start_encounter=buffer.start_encounter,
            end_encounter=buffer.end_encounter,
            readings_for_patient=buffer.readings_for_patient,
            triage_for_readings=buffer.triage_for_readings,
            recent_triage=buffer.recent_triage,
        )
    )
    log.info("api_ready", port=settings.api.port, tls_fingerprint=tls.fingerprint)
    return app, tls


async def _start_discovery(
    settings: HubSettings, tls: TlsIdentity, buffer: Buffer, stop: asyncio.Event
) -> tuple[Discovery, list[asyncio.Task[object]]]:
    """Advertise the hub and browse phones, recording them in the buffer as they come and go.

    With interface names in `discovery.interfaces`, also the task that follows their addresses.
    """
    discovery = Discovery(
        HubRecord(settings.identity.hub_id, settings.api.port, tls.fingerprint),
        interfaces=resolve(settings.discovery.interfaces),
        on_phone=functools.partial(_save_phone, buffer),
    )
    await buffer.phones_absent()  # none is known to be there until discovery sees it again
    if discovery.addresses:
        await discovery.start()
    else:  # the interface has no address yet (Wi-Fi still joining): _follow_addresses starts it
        structlog.get_logger("hub.discovery").warning(
            "discovery_no_address", interfaces=list(settings.discovery.interfaces)
        )
    if all(is_ipv4(entry) for entry in settings.discovery.interfaces):
        return discovery, []
    follow = _follow_addresses(discovery, settings.discovery, stop)
    return discovery, [asyncio.create_task(follow)]


async def _follow_addresses(
    discovery: Discovery, settings: DiscoverySettings, stop: asyncio.Event
) -> None:
    """Re-announce the hub whenever its interfaces' addresses change (DHCP, Wi-Fi back up)."""
    log = structlog.get_logger("hub.discovery")
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.recheck_s)
        if stop.is_set():
            return
        try:
            addresses = resolve(settings.interfaces)
            if addresses != discovery.addresses:
                await discovery.rebind(addresses)
                if addresses and not discovery.running:
                    await discovery.start()
        except Exception:  # never the end of the hub: looked at again at the next recheck
            log.exception("discovery_rebind_failed")


async def _save_phone(buffer: Buffer, phone: PhoneSeen) -> None:
    """Persist what discovery saw, for `tecsa-hub phones`."""
    await buffer.phone_seen(
        phone.name, agent=phone.agent, app=phone.app, at=phone.last_seen, present=phone.present
    )


def _build_models(settings: HubSettings) -> tuple[ModelHolder, ModelService | None]:
    """The model triage uses and the service that installs releases (None without the key).

    Without the cloud's signing key no release can be verified: triage then runs on the model
    bundled with the hub (or NEWS2 alone) and `model_release` commands are not handled. The
    model is checked here (signature, or manifest and checksum) but not loaded: numpy and LiteRT
    are imported when triage first scores a bound patient's readings (`ModelHolder`).
    """
    try:
        cloud_key = load_public_key(settings.identity.cloud_signing_key, Ed25519PublicKey)
    except WireError as exc:
        structlog.get_logger("hub.models").error(
            "model_releases_disabled", reason=str(exc), fix="install the cloud's signing public key"
        )
        return ModelHolder(choose_default()), None
    service = ModelService(ModelStore(settings.models.dir, cloud_key))
    try:
        service.reload()
    except OSError as exc:  # an unreadable models dir must not stop triage (nor the hub)
        structlog.get_logger("hub.models").error(
            "models_dir_unreadable", dir=str(settings.models.dir), error=str(exc)
        )
        service.holder.swap(choose_default())
    return service.holder, service


MODELS_RECHECK_S = 5.0


def _follow_models(
    models: ModelService | None, uplink: UplinkService | None, stop: asyncio.Event
) -> list[asyncio.Task[object]]:
    """Put in use a model a technician activated with `tecsa-hub models rollback|install`.

    Those commands run in another process and only move the store's `active` pointer; the
    daemon notices within MODELS_RECHECK_S, loads it and reports it in up/status.
    """
    if models is None:
        return []

    async def follow() -> None:
        log = structlog.get_logger("hub.models")
        seen = models.store.active_version()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), MODELS_RECHECK_S)
            try:
                now = models.store.active_version()
                if now != seen:
                    await asyncio.to_thread(models.reload)
                    log.info("model_changed_on_disk", active=now, previous=seen)
                    seen = now
                    if uplink is not None:
                        uplink.refresh_status()
            except Exception:  # a damaged directory: triage keeps the model it has
                log.exception("models_recheck_failed")

    return [asyncio.create_task(follow())]


def _start_triage(
    settings: HubSettings, buffer: Buffer, holder: ModelHolder, stop: asyncio.Event
) -> list[asyncio.Task[object]]:
    """The triage loop over new readings (on the holder's model at each batch), if enabled."""
    t = settings.triage
    if not t.enabled:
        structlog.get_logger("hub.triage").warning("triage_disabled", reason="triage.enabled")
        return []
    config = EngineConfig(
        window=timedelta(minutes=t.window_minutes),
        interval_s=t.interval_s,
        batch_size=t.batch_size,
        rescore_s=t.rescore_s,
    )
    engine = TriageEngine(
        buffer,
        settings.buffer.path,
        holder.triage_model,
        config,
        model_loaded=lambda: holder.loaded,
    )
    return [asyncio.create_task(engine.run(stop))]


def _build_commands(
    settings: HubSettings,
    buffer: Buffer,
    revoked: RevokedTokens,
    models: ModelService | None = None,
) -> CommandHandler | None:
    """The handler of the cloud's signed commands, or None (logged) without the cloud's key."""
    identity = settings.identity
    try:
        cloud_key = load_public_key(identity.cloud_signing_key, Ed25519PublicKey)
    except WireError as exc:
        structlog.get_logger("hub.commands").error(
            "commands_disabled", reason=str(exc), fix="install the cloud's signing public key"
        )
        return None
    return CommandHandler(
        hub_id=identity.hub_id,
        cloud_key=cloud_key,
        buffer=buffer,
        handlers={CommandKind.PLANS: plans_handler(buffer)}
        | ({CommandKind.MODEL_RELEASE: model_release_handler(models)} if models else {}),
        revoked=revoked,
    )


def _build_uplink(
    settings: HubSettings,
    buffer: Buffer,
    commands: CommandHandler | None = None,
    holder: ModelHolder | None = None,
) -> UplinkService | None:
    """The uplink, or None (logged) when it is disabled or its keys are missing.

    A hub without its keys keeps collecting: readings wait in the buffer until a technician
    fixes the keys (`tecsa-hub keys init`, the cloud's public keys in /etc/tecsa-hub).
    """
    log = structlog.get_logger("hub.uplink")
    if not settings.uplink.enabled:
        log.warning("uplink_disabled", reason="uplink.enabled is false")
        return None
    identity = settings.identity
    try:
        keys = UplinkKeys.from_files(
            hub_identity=identity.key_dir / IDENTITY_KEY_FILE,
            cloud_ingest=identity.cloud_ingest_key,
            cloud_signing=identity.cloud_signing_key,
        )
    except WireError as exc:
        log.error(
            "uplink_disabled", reason=str(exc), fix="tecsa-hub keys init; install the cloud keys"
        )
        return None
    config = UplinkConfig.from_settings(identity.hub_id, settings.uplink, version=__version__)
    return UplinkService(
        config,
        buffer,
        keys,
        on_command=commands,
        status_extra=functools.partial(_status_extra, commands, holder),
    )


def _status_extra(commands: CommandHandler | None, holder: ModelHolder | None) -> dict[str, Any]:
    """What up/status carries besides the uplink's own state: commands, the model in use."""
    report = commands.status() if commands is not None else {}
    return report | {
        "model_version": holder.version if holder is not None else None,
        "model_refused": holder.refused if holder is not None else None,
    }


def _threadsafe(callback: Callable[[], object]) -> Callable[[], None]:
    """`callback` run on this loop, whichever thread calls the returned function."""
    loop = asyncio.get_running_loop()

    def call() -> None:
        loop.call_soon_threadsafe(callback)

    return call


async def _keep_ble_running(central: Central, stop: asyncio.Event) -> None:
    log = structlog.get_logger("hub.ble")
    while not stop.is_set():
        try:
            await central.run(stop)
        except BleError as exc:
            log.error("ble_unavailable", error=str(exc), retry_in_s=BLE_RETRY_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), BLE_RETRY_S)


def serve(settings: HubSettings, options: DaemonOptions) -> None:
    """Run the daemon in this process until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_hub(settings, options, stop)

    asyncio.run(main())
