"""Zeroconf I/O: advertise the hub, browse phones, keep who was seen when.

Interfaces are explicit (`discovery.interfaces` in the config); tests and the demo use
127.0.0.1 only. The advertisement is refreshed when the hub's addresses change (`update`), and
withdrawn with goodbye packets on `close`. A phone that withdraws its record is marked gone.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from hub.discovery.records import AGENT_SERVICE, HUB_SERVICE, HubRecord, RecordError, parse_phone

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Sequence

log = structlog.get_logger("hub.discovery")
RESOLVE_MS = 3000


@dataclass(frozen=True, slots=True)
class PhoneSeen:
    """A phone the hub has heard of."""

    name: str
    agent: str | None
    app: str | None
    first_seen: datetime
    last_seen: datetime
    present: bool


class Discovery:
    """The hub's zeroconf presence: one per daemon."""

    def __init__(
        self,
        record: HubRecord,
        *,
        interfaces: Sequence[str],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_phone: Callable[[PhoneSeen], Awaitable[None]] | None = None,
    ) -> None:
        """`on_phone` is awaited with each change to the phones list (the daemon persists it)."""
        self._record = record
        self._on_phone = on_phone
        self._interfaces = list(interfaces)
        self._now = now
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._phones: dict[str, PhoneSeen] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.changed = asyncio.Event()
        """Set whenever the phones list changes (tests and the API wait on it)."""

    @property
    def phones(self) -> list[PhoneSeen]:
        """Phones seen, most recent first."""
        return sorted(self._phones.values(), key=lambda p: p.last_seen, reverse=True)

    async def start(self) -> None:
        """Advertise the hub on the configured interfaces and start browsing for phones."""
        if not self._interfaces:
            raise ValueError("no address to advertise on: name an address or an interface")
        self._zc = AsyncZeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)
        self._info = self._service_info()
        await self._zc.async_register_service(self._info)
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf, AGENT_SERVICE, handlers=[self._on_change]
        )
        log.info("discovery_started", service=self._record.instance(), interfaces=self._interfaces)

    @property
    def running(self) -> bool:
        """True while the hub is advertised."""
        return self._zc is not None

    @property
    def addresses(self) -> tuple[str, ...]:
        """The IPv4 addresses advertised on now."""
        return tuple(self._interfaces)

    async def rebind(self, addresses: Sequence[str]) -> bool:
        """Advertise on `addresses` from now on (the hub's address changed); True if they did.

        Says goodbye on the old addresses first, so phones drop the stale address at once rather
        than when its record expires, then announces on the new ones. With no address at all the
        hub is withdrawn until one comes back.
        """
        new = list(dict.fromkeys(addresses))
        if new == self._interfaces:
            return False
        old, running = self._interfaces, self._zc is not None
        await self.close()
        self._interfaces = new
        if new and running:
            await self.start()
        log.info("discovery_rebound", old=old, new=new, advertised=bool(new and running))
        return True

    async def update(self, record: HubRecord) -> None:
        """Re-announce after a change (new address, port or certificate)."""
        self._record = record
        if self._zc is None:
            return
        self._info = self._service_info()
        await (await self._zc.async_update_service(self._info))
        log.info("discovery_reannounced", service=record.instance())

    async def close(self) -> None:
        """Withdraw the advertisement (goodbye packets) and stop browsing."""
        for task in list(self._tasks):
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._zc is not None:
            if self._info is not None:
                # The call returns the goodbye task: await it too, or the goodbye packets are
                # never sent before the socket closes and phones keep a dead hub until they probe.
                await (await self._zc.async_unregister_service(self._info))
            await self._zc.async_close()
        self._zc = None

    def _service_info(self) -> AsyncServiceInfo:
        record = self._record
        return AsyncServiceInfo(
            HUB_SERVICE,
            record.instance(),
            addresses=[socket.inet_aton(a) for a in self._interfaces],
            port=record.port,
            properties=record.txt(),
            server=f"{record.hub_id}.local.",
        )

    def _on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        del service_type
        if state_change is ServiceStateChange.Removed:
            seen = self._phones.get(name)
            if seen is not None:
                self._phones[name] = replace(seen, present=False, last_seen=self._now())
                self._spawn(self._tell(self._phones[name]))
            return
        self._spawn(self._resolve(zeroconf, name))

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tell(self, phone: PhoneSeen) -> None:
        """Hand a change to `on_phone` (errors logged: discovery goes on), then signal it."""
        if self._on_phone is not None:
            try:
                await self._on_phone(phone)
            except Exception as exc:  # noqa: BLE001 - persisting is best effort; keep browsing
                log.warning("discovery_phone_not_saved", name=phone.name, error=repr(exc))
        self.changed.set()

    async def _resolve(self, zeroconf: Zeroconf, name: str) -> None:
        info = AsyncServiceInfo(AGENT_SERVICE, name)
        if not await info.async_request(zeroconf, RESOLVE_MS):
            return
        try:
            phone = parse_phone(name, dict(info.properties))
        except RecordError as exc:
            log.debug("discovery_bad_record", name=name, error=str(exc))
            return
        now = self._now()
        previous = self._phones.get(name)
        self._phones[name] = PhoneSeen(
            name=name,
            agent=phone.agent,
            app=phone.app,
            first_seen=previous.first_seen if previous else now,
            last_seen=now,
            present=True,
        )
        await self._tell(self._phones[name])
