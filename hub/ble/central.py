"""The BLE central: find devices, connect, subscribe first, download, and store every reading.

One `Central` per hub. It scans with a service filter built from the device profiles, matches each
advertisement to a profile, and runs one session per device (at most `max_connections` at once):

1. connect (bleak-retry-connector), pair when the profile requires it and no bond is known;
2. set the clock first when the profile says so (some cuffs wait for it);
3. subscribe to every characteristic of the profile **before anything else**, so that stored
   readings a device indicates right after the CCCD write are kept;
4. read the profile's feature characteristics, synchronise the clock (keep the measured offset when
   the device refuses the write), download stored records newer than the last one stored (RACP);
5. stay connected and store what arrives until the device disconnects or the hub stops.

Notifications are queued by the bleak callback and written by one task per session, in groups, to
the buffer; a device's last RACP sequence advances only to records that are durable. A device
that fails is retried when it is seen again, after an exponential backoff with jitter. Nothing a
device sends (garbage, vanishing mid-download) stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from bleak import BleakClient, BleakScanner
from bleak_retry_connector import establish_connection

from hub.ble.errors import BleError, BondingRefused, DeviceUnreachable, GattFailure, translate
from hub.ble.parsers import (
    CurrentTime,
    DateTime,
    Measurement,
    ParseError,
    RacpResponse,
    build_abort_operation,
    build_current_time,
    build_date_time,
    build_report_all_records,
    build_report_records_from,
    parse,
)
from hub.ble.profiles import Advertisement, Profile, match_profile
from hub.ble.readings import Converted, measured_at, to_reading
from hub.buffer import BondState, BufferFull, HubBufferError, NewReading

if TYPE_CHECKING:
    from collections.abc import Callable

    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

    from hub.buffer import Buffer
    from hub.config import BleSettings
    from wire.items import Reading

SIG_UUID = "0000{}-0000-1000-8000-00805f9b34fb"  # Bluetooth Base UUID, Core Vol 3 Part B 2.5.1
_MAX_SEQ = 0xFFFF  # RACP sequence operands are uint16 (GLS 1.0 4.11)
_WRITE_GROUP = 256  # readings written per buffer transaction at most
_BACKOFF_BASE_S = 2.0
_FULL_RETRY_S = 5.0
_Item = tuple[str, bytes, datetime]


def full_uuid(uuid16: str) -> str:
    """The 128-bit form bleak uses for a 16-bit SIG UUID."""
    return SIG_UUID.format(uuid16)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Backends:
    """bleak backend classes; None uses bleak's platform default (BlueZ on a hub)."""

    scanner: Any = None
    client: Any = None


@dataclass(frozen=True, slots=True)
class Found:
    """A device seen while scanning."""

    address: str
    name: str | None
    rssi: int | None
    profile: str | None


@dataclass
class CentralStats:
    """Counters an operator or a test reads; the metrics exporter publishes them."""

    sessions: int = 0
    session_failures: int = 0
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    not_patient: int = 0
    parse_errors: int = 0
    unmatched_advertisements: int = 0


@dataclass
class _SessionState:
    address: str
    clock_offset_s: float | None
    last_seq: int | None
    max_stored_seq: int | None = None
    last_activity: float = 0.0
    """Loop time of the last value received (or of the connection)."""
    warned: set[str] = field(default_factory=set)


class Central:
    """Scans, connects and stores; see the module docstring for the order of a session."""

    def __init__(
        self,
        *,
        profiles: tuple[Profile, ...],
        buffer: Buffer,
        settings: BleSettings,
        backends: Backends | None = None,
        now: Callable[[], datetime] = _utcnow,
        rand: Callable[[int], bytes] = os.urandom,
        on_stored: Callable[[Reading], None] | None = None,
    ) -> None:
        self._profiles = profiles
        self._buffer = buffer
        self._settings = settings
        self._backends = backends or Backends()
        self._now = now
        self._rand = rand
        self._on_stored = on_stored
        self._tz = ZoneInfo(settings.device_timezone)
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._sessions: dict[str, asyncio.Task[None]] = {}
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._waiting = 0
        self._links: set[str] = set()
        self._stop = asyncio.Event()
        self._log = structlog.get_logger("hub.ble")
        self.stats = CentralStats()

    def service_filter(self) -> list[str]:
        """Full UUIDs of every service some profile matches on, for the scanner's filter."""
        return sorted({full_uuid(u) for p in self._profiles for u in p.match.service_uuids})

    @property
    def connected(self) -> frozenset[str]:
        """Addresses the hub holds a link to right now."""
        return frozenset(self._links)

    async def run(self, stop: asyncio.Event) -> None:
        """Scan and serve devices until `stop` is set; then end every session cleanly."""
        self._stop = stop
        try:
            async with BleakScanner(
                detection_callback=self._on_advertisement,
                service_uuids=self.service_filter(),
                **self._scanner_kwargs(),
            ):
                self._log.info("ble_scanning", profiles=len(self._profiles))
                await stop.wait()
        except BleError:
            raise
        except Exception as exc:
            raise translate(exc, address="adapter", doing="scanning") from exc
        finally:
            tasks = list(self._sessions.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- scanning ------------------------------------------------------------------------------

    def _scanner_kwargs(self) -> dict[str, Any]:
        return {} if self._backends.scanner is None else {"backend": self._backends.scanner}

    def _on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        address = device.address.upper()
        if address in self._sessions or self._stop.is_set():
            return
        profile = match_profile(_advertisement(adv), self._profiles)
        if profile is None:
            self.stats.unmatched_advertisements += 1
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._retry_at.get(address, 0.0):
            return
        self._sessions[address] = loop.create_task(
            self._supervised(device, profile), name=f"ble-session-{address}"
        )

    async def _supervised(self, device: BLEDevice, profile: Profile) -> None:
        address = device.address.upper()
        log = self._log.bind(address=address, profile=profile.name)
        loop = asyncio.get_running_loop()
        try:
            self._waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self._waiting -= 1
            try:
                self.stats.sessions += 1
                await self._session(device, profile, log)
            finally:
                self._slots.release()
            self._failures.pop(address, None)
        except BleError as exc:
            self._retry_later(address, loop)
            self.stats.session_failures += 1
            log.warning(
                "ble_session_failed",
                error=str(exc),
                retry_in_s=round(self._retry_at[address] - loop.time(), 1),
            )
        except HubBufferError as exc:
            self._retry_later(address, loop)
            self.stats.session_failures += 1
            log.error("ble_session_buffer_error", error=str(exc))
        except asyncio.CancelledError:
            raise
        except Exception:  # one device's bug never stops the central
            self._retry_later(address, loop)
            self.stats.session_failures += 1
            log.exception("ble_session_crashed")
        finally:
            self._sessions.pop(address, None)

    def _retry_later(self, address: str, loop: asyncio.AbstractEventLoop) -> None:
        failures = self._failures.get(address, 0) + 1
        self._failures[address] = failures
        delay = min(self._settings.reconnect_max_s, _BACKOFF_BASE_S * 2 ** (failures - 1))
        jitter = random.uniform(0.5, 1.0)  # noqa: S311 - spreading retries, not a secret
        self._retry_at[address] = loop.time() + delay * jitter

    # --- one connection ------------------------------------------------------------------------

    async def _session(self, device: BLEDevice, profile: Profile, log: Any) -> None:  # noqa: ANN401 - structlog's bound logger
        address = device.address.upper()
        known = self._buffer.device(address)
        await self._buffer.device_seen(
            address, profile=profile.name, name=device.name, at=self._now()
        )
        state = _SessionState(
            address,
            clock_offset_s=known.clock_offset_s if known else None,
            last_seq=known.last_racp_seq if known else None,
        )
        disconnected = asyncio.Event()
        inbox: asyncio.Queue[_Item | None] = asyncio.Queue()
        control: asyncio.Queue[bytes | None] = asyncio.Queue()

        def on_disconnect() -> None:
            disconnected.set()
            control.put_nowait(None)  # link lost: wakes a download waiting for the RACP answer

        client = await self._connect(device, on_disconnect)
        state.last_activity = asyncio.get_running_loop().time()
        self._links.add(address)
        writer = asyncio.create_task(self._write_loop(profile, inbox, state, log))
        try:
            await self._prepare(
                client, profile, known=known, inbox=inbox, control=control, state=state, log=log
            )
            if profile.racp is not None:
                await self._download(client, profile, control, state, log)
            await inbox.join()  # what arrived so far is durable: remember sequence and clock now
            await self._remember(state)
            reason = await self._hold(disconnected, state)
            log.info("ble_session_ended", reason=reason)
        except BleError:
            raise
        except (TimeoutError, Exception) as exc:
            if disconnected.is_set():
                raise translate(EOFError(), address=address, doing="talking to it") from exc
            raise translate(exc, address=address, doing="talking to it") from exc
        finally:
            inbox.put_nowait(None)
            await writer  # everything received is written before the session ends
            with contextlib.suppress(Exception):
                await client.disconnect()
            self._links.discard(address)
            await self._remember(state)

    async def _hold(self, disconnected: asyncio.Event, state: _SessionState) -> str:
        """Stay connected until the device leaves, the hub stops, or others need the slot.

        A device silent for `idle_disconnect_s` is let go only while another device waits for a
        connection slot; one with more data advertises again and is reconnected. A device that is
        never silent that long is let go after `share_after_s` while others wait, so that slots
        rotate: what it measures meanwhile waits in its own memory (or its next advertisement).
        """
        idle = self._settings.idle_disconnect_s
        share_after = self._settings.share_after_s
        held_since = asyncio.get_running_loop().time()
        stop = asyncio.create_task(self._stop.wait())
        gone = asyncio.create_task(disconnected.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {stop, gone}, timeout=idle / 4, return_when=asyncio.FIRST_COMPLETED
                )
                if stop in done:
                    return "hub stopping"
                if gone in done:
                    return "disconnected"
                now = asyncio.get_running_loop().time()
                if self._waiting and now - state.last_activity >= idle:
                    return "idle while other devices wait"
                if self._waiting and now - held_since >= share_after:
                    return "slot shared with waiting devices"
        finally:
            stop.cancel()
            gone.cancel()

    async def _connect(self, device: BLEDevice, on_disconnect: Callable[[], None]) -> BleakClient:
        kwargs: dict[str, Any] = {}
        if self._backends.client is not None:
            kwargs["backend"] = self._backends.client
        try:
            return await establish_connection(
                BleakClient,
                device,
                device.name or device.address,
                disconnected_callback=lambda _client: on_disconnect(),
                max_attempts=3,
                **kwargs,
            )
        except Exception as exc:
            raise translate(exc, address=device.address, doing="connecting") from exc

    async def _prepare(
        self,
        client: BleakClient,
        profile: Profile,
        *,
        known: Any,  # noqa: ANN401 - hub.buffer.Device or None
        inbox: asyncio.Queue[_Item | None],
        control: asyncio.Queue[bytes | None],
        state: _SessionState,
        log: Any,  # noqa: ANN401 - structlog's bound logger
    ) -> None:
        if profile.bonding == "required" and (
            known is None or known.bond_state != BondState.BONDED
        ):
            await self._pair(client, state.address, log)
        if profile.clock.write_first:
            await self._sync_clock(client, profile, state, log, force=True)
        racp_char = profile.racp.characteristic if profile.racp else None
        present = [
            sub
            for sub in profile.subscribe
            if client.services.get_characteristic(full_uuid(sub.characteristic)) is not None
        ]
        if not any(sub.role == "measurement" for sub in present):
            raise GattFailure(
                f"{state.address} has none of the measurement characteristics of profile "
                f"{profile.name} ({', '.join(s.characteristic for s in profile.subscribe)})"
            )
        for sub in present:
            if sub.characteristic == racp_char:
                await client.start_notify(
                    full_uuid(sub.characteristic), lambda _c, data: control.put_nowait(bytes(data))
                )
            else:
                await client.start_notify(
                    full_uuid(sub.characteristic), self._enqueue(sub.characteristic, inbox, state)
                )
        log.info("ble_subscribed", characteristics=[s.characteristic for s in present])
        for char in profile.read:
            try:
                value = await client.read_gatt_char(full_uuid(char))
                log.debug("ble_read", characteristic=char, result=repr(parse(char, bytes(value))))
            except (ParseError, Exception) as exc:  # noqa: BLE001 - a feature read is informative only
                log.info("ble_read_failed", characteristic=char, error=str(exc))
        if profile.clock.method != "none" and not profile.clock.write_first:
            await self._sync_clock(client, profile, state, log, force=False)

    def _enqueue(
        self, char: str, inbox: asyncio.Queue[_Item | None], state: _SessionState
    ) -> Callable[[Any, bytearray], None]:
        loop = asyncio.get_running_loop()

        def on_value(_sender: Any, data: bytearray) -> None:  # noqa: ANN401 - bleak's sender type varies
            state.last_activity = loop.time()
            inbox.put_nowait((char, bytes(data), self._now()))

        return on_value

    async def _pair(self, client: BleakClient, address: str, log: Any) -> None:  # noqa: ANN401 - structlog's bound logger
        try:
            await client.pair()
        except Exception as exc:
            raise BondingRefused(f"{address} refused pairing: {exc}") from exc
        await self._buffer.update_device(address, bond_state=BondState.BONDED)
        log.info("ble_bonded")

    async def _sync_clock(
        self,
        client: BleakClient,
        profile: Profile,
        state: _SessionState,
        log: Any,  # noqa: ANN401 - structlog's bound logger
        *,
        force: bool,
    ) -> None:
        """Read the device clock, write ours if it is off (or `force`); never fails the session."""
        clock = profile.clock
        char = clock.characteristic or ("2a2b" if clock.method == "current_time" else "2a08")
        if client.services.get_characteristic(full_uuid(char)) is None:
            log.debug("ble_no_clock", characteristic=char)
            return
        now_local = self._now().astimezone(self._tz).replace(tzinfo=None)
        if not force:
            try:
                value = parse(char, bytes(await client.read_gatt_char(full_uuid(char))))
                stamp = value.date_time if isinstance(value, CurrentTime) else value
                device_time = stamp.value if isinstance(stamp, DateTime) else None
                if device_time is not None:
                    state.clock_offset_s = (device_time - now_local).total_seconds()
            except (ParseError, Exception) as exc:  # noqa: BLE001 - the clock is best effort
                log.info("ble_clock_read_failed", error=str(exc))
            if state.clock_offset_s is not None and abs(state.clock_offset_s) <= clock.threshold_s:
                await self._remember(state)
                return
        payload = build_current_time(now_local) if char == "2a2b" else build_date_time(now_local)
        try:
            await client.write_gatt_char(full_uuid(char), payload, response=True)
        except Exception as exc:  # noqa: BLE001 - a refused write keeps the measured offset
            log.info("ble_clock_write_refused", error=str(exc), offset_s=state.clock_offset_s)
        else:
            state.clock_offset_s = 0.0
            log.info("ble_clock_set", characteristic=char)
        await self._remember(state)

    async def _download(
        self,
        client: BleakClient,
        profile: Profile,
        control: asyncio.Queue[bytes | None],
        state: _SessionState,
        log: Any,  # noqa: ANN401 - structlog's bound logger
    ) -> None:
        """Ask for records newer than the last durable one and wait for the RACP to finish."""
        racp = profile.racp
        assert racp is not None  # noqa: S101 - callers check
        start = None if state.last_seq is None or state.last_seq >= _MAX_SEQ else state.last_seq + 1
        request = build_report_all_records() if start is None else build_report_records_from(start)
        await client.write_gatt_char(full_uuid(racp.characteristic), request, response=True)
        log.info("ble_racp_requested", from_seq=start)
        try:
            async with asyncio.timeout(racp.timeout_s):
                while True:
                    data = await control.get()
                    if data is None:
                        raise DeviceUnreachable(f"{state.address} went away during the download")
                    try:
                        answer = parse(racp.characteristic, data)
                    except ParseError as exc:
                        self._parse_error(state, racp.characteristic, exc, log)
                        continue
                    if isinstance(answer, RacpResponse):
                        break
        except TimeoutError:
            with contextlib.suppress(Exception):
                await client.write_gatt_char(
                    full_uuid(racp.characteristic), build_abort_operation(), response=True
                )
            raise GattFailure(f"{state.address}: record download timed out") from None
        if not answer.success:
            raise GattFailure(f"{state.address}: record download refused: {answer.response}")
        log.info("ble_racp_done", response=answer.response)

    # --- storing -------------------------------------------------------------------------------

    async def _write_loop(
        self,
        profile: Profile,
        inbox: asyncio.Queue[_Item | None],
        state: _SessionState,
        log: Any,  # noqa: ANN401 - structlog's bound logger
    ) -> None:
        """Parse, convert and store queued values in groups until the sentinel arrives."""
        quirks = frozenset(profile.quirks)
        done = False
        while not done:
            items: list[_Item] = []
            first = await inbox.get()
            for item in (first, *_drain(inbox, _WRITE_GROUP - 1)):
                if item is None:
                    done = True
                else:
                    items.append(item)
            converted = [c for c in (self._convert(i, quirks, state, log) for i in items) if c]
            if converted:
                await self._store(converted, state, log)
            for _ in range(len(items) + done):
                inbox.task_done()

    def _convert(
        self,
        item: _Item,
        quirks: frozenset[str],
        state: _SessionState,
        log: Any,  # noqa: ANN401 - structlog's bound logger
    ) -> Converted | None:
        char, raw, received_at = item
        self.stats.received += 1
        try:
            result = parse(char, raw, quirks=quirks)
        except ParseError as exc:
            self._parse_error(state, char, exc, log)
            return None
        if not isinstance(result, Measurement):
            return None
        # The encounter is looked up at the hub's estimate of the measuring time (the device's
        # clock corrected by its offset), the same time the reading is stored with.
        when = measured_at(
            result.device_time, clock_offset_s=state.clock_offset_s, device_tz=self._tz
        )
        patient = self._buffer.patient_for(state.address, when or received_at)
        converted = to_reading(
            result,
            address=state.address,
            raw=raw,
            received_at=received_at,
            clock_offset_s=state.clock_offset_s,
            device_tz=self._tz,
            patient=(patient.patient_id, patient.encounter_id) if patient else None,
            rand=self._rand(10),
        )
        if converted is None:
            self.stats.not_patient += 1
            log.info("ble_not_a_patient_reading", characteristic=char, flags=list(result.flags))
        return converted

    async def _store(self, converted: list[Converted], state: _SessionState, log: Any) -> None:  # noqa: ANN401 - structlog's bound logger
        items = [NewReading(c.reading, c.dedupe_key) for c in converted]
        while True:
            try:
                results = await self._buffer.insert_many(items)
                break
            except BufferFull as exc:
                # Keep what we hold (the device already handed it over) and wait for space.
                log.error("ble_buffer_full", held=len(items), error=str(exc))
                await asyncio.sleep(_FULL_RETRY_S)
        for c, result in zip(converted, results, strict=True):
            seq = c.reading.device_seq
            if seq is not None:
                state.max_stored_seq = max(seq, state.max_stored_seq or seq)
            if result == "stored":
                self.stats.stored += 1
                if self._on_stored is not None:
                    self._on_stored(c.reading)
            else:
                self.stats.duplicates += 1
        log.debug("ble_stored", readings=len(items))

    async def _remember(self, state: _SessionState) -> None:
        """Persist the clock offset and the highest durable record sequence for the next session."""
        changes: dict[str, Any] = {}
        if state.clock_offset_s is not None:
            changes["clock_offset_s"] = state.clock_offset_s
        newest = state.max_stored_seq
        if newest is not None and (state.last_seq is None or newest > state.last_seq):
            changes["last_racp_seq"] = newest
            state.last_seq = newest
        if changes:
            with contextlib.suppress(HubBufferError):
                await self._buffer.update_device(state.address, **changes)

    def _parse_error(self, state: _SessionState, char: str, exc: ParseError, log: Any) -> None:  # noqa: ANN401 - structlog's bound logger
        """Count every bad value; warn once per device and characteristic, then only debug."""
        self.stats.parse_errors += 1
        if char in state.warned:
            log.debug("ble_bad_value", characteristic=char, reason=exc.reason)
            return
        state.warned.add(char)
        log.warning("ble_bad_value", characteristic=char, reason=exc.reason)


async def scan(
    profiles: tuple[Profile, ...], *, seconds: float, backends: Backends | None = None
) -> list[Found]:
    """Listen for `seconds` and list every device heard, with the profile it matches (if any)."""
    found: dict[str, Found] = {}

    def seen(device: BLEDevice, adv: AdvertisementData) -> None:
        profile = match_profile(_advertisement(adv), profiles)
        found[device.address.upper()] = Found(
            device.address.upper(), adv.local_name, adv.rssi, profile.name if profile else None
        )

    kwargs = {} if backends is None or backends.scanner is None else {"backend": backends.scanner}
    try:
        async with BleakScanner(detection_callback=seen, **kwargs):
            await asyncio.sleep(seconds)
    except Exception as exc:
        raise translate(exc, address="adapter", doing="scanning") from exc
    return sorted(found.values(), key=lambda f: (f.profile is None, f.address))


def _advertisement(adv: AdvertisementData) -> Advertisement:
    return Advertisement(
        name=adv.local_name,
        service_uuids=tuple(adv.service_uuids),
        manufacturer_ids=tuple(adv.manufacturer_data),
    )


def _drain(queue: asyncio.Queue[_Item | None], limit: int) -> list[_Item | None]:
    items: list[_Item | None] = []
    while len(items) < limit:
        try:
            items.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            break
    return items
