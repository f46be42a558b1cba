"""Finding hubs: browse `_tecsa-hub._tcp.local.` by zeroconf, keep those that are there.

A hub's TXT record carries `hub_id`, `api` (the API version) and `tls` (the SHA-256 hex of its
certificate's DER, which the phone pins). A record that does not parse is ignored; a hub that
withdraws its record (goodbye packets when it stops) is dropped from the view at once; one that
vanishes without a goodbye (power cut, crash) is dropped when its port stops accepting connections
(probed every `probe_every_s`), long before its DNS-SD records would expire. Interfaces are
explicit: tests and the demo browse on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import structlog
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from wire.errors import InvalidTopic
from wire.topics import validate_hub_id

if TYPE_CHECKING:
    from collections.abc import Coroutine, Sequence

HUB_SERVICE = "_tecsa-hub._tcp.local."
API_VERSION = "1"
RESOLVE_MS = 3000
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
_MAX_VALUE = 200  # TXT strings are at most 255 bytes (RFC 6763 section 6.1)
log = structlog.get_logger("phone.discovery")


@dataclass(frozen=True, slots=True)
class HubAd:
    """A hub as advertised: where to connect and which certificate to expect."""

    hub_id: str
    host: str
    port: int
    fingerprint: str
    api: str
    name: str


def parse_hub_ad(
    name: str, addresses: Sequence[str], port: int | None, properties: dict[bytes, bytes | None]
) -> HubAd | None:
    """The hub in a resolved record, or None if the record is not a usable hub of ours."""
    txt: dict[str, str] = {}
    for key, value in properties.items():
        if value is None or len(key) > _MAX_VALUE or len(value) > _MAX_VALUE:
            continue
        try:
            txt[key.decode("ascii")] = value.decode("utf-8")
        except UnicodeDecodeError:
            continue
    hub_id, fingerprint = txt.get("hub_id"), txt.get("tls", "")
    if hub_id is None or not _FINGERPRINT.match(fingerprint) or not addresses:
        return None
    if port is None or not 0 < port < 65536:  # noqa: PLR2004 - TCP port range
        return None
    try:
        validate_hub_id(hub_id)
    except InvalidTopic:
        return None
    return HubAd(hub_id, addresses[0], port, fingerprint, txt.get("api", "?"), name)


class HubBrowser:
    """The hubs currently advertised on `interfaces` (use as `async with`)."""

    def __init__(self, *, interfaces: Sequence[str], probe_every_s: float | None = 5.0) -> None:
        self._interfaces = list(interfaces)
        self._probe_every_s = probe_every_s
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._hubs: dict[str, HubAd] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.changed = asyncio.Event()
        """Set whenever a hub appears or goes; callers clear it before waiting again."""

    @property
    def hubs(self) -> list[HubAd]:
        """The hubs seen and not withdrawn, by hub id."""
        return sorted(self._hubs.values(), key=lambda h: h.hub_id)

    async def start(self) -> None:
        """Start browsing."""
        self._zc = AsyncZeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf, HUB_SERVICE, handlers=[self._on_change]
        )
        if self._probe_every_s is not None:
            self._spawn(self._probe_forever(self._probe_every_s))

    async def close(self) -> None:
        """Stop browsing."""
        for task in list(self._tasks):
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zc is not None:
            await self._zc.async_close()
        self._zc = self._browser = None

    async def wait_for(self, *, hub_id: str | None = None, within_s: float) -> HubAd | None:
        """The first hub seen (or the one named `hub_id`), or None after `within_s` seconds."""
        try:
            async with asyncio.timeout(within_s):
                while True:
                    self.changed.clear()
                    for hub in self.hubs:
                        if hub_id is None or hub.hub_id == hub_id:
                            return hub
                    await self.changed.wait()
        except TimeoutError:
            return None

    async def wait_gone(self, hub_id: str, *, within_s: float) -> bool:
        """True once `hub_id` is no longer advertised, False if it still is after `within_s`."""
        try:
            async with asyncio.timeout(within_s):
                while any(h.hub_id == hub_id for h in self.hubs):
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            return False
        return True

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        del service_type
        if state_change is ServiceStateChange.Removed:
            gone = self._hubs.pop(name, None)
            if gone is not None:
                log.info("hub_withdrawn", hub_id=gone.hub_id)
                self.changed.set()
            return
        self._spawn(self._resolve(zeroconf, name))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _probe_forever(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            for name, hub in list(self._hubs.items()):
                up = await _reachable(hub.host, hub.port, timeout_s=min(every_s, 2.0))
                if not up and self._hubs.pop(name, None) is not None:
                    log.info("hub_unreachable", hub_id=hub.hub_id)
                    self.changed.set()

    async def _resolve(self, zeroconf: Zeroconf, name: str) -> None:
        info = AsyncServiceInfo(HUB_SERVICE, name)
        if not await info.async_request(zeroconf, RESOLVE_MS):
            return
        hub = parse_hub_ad(
            name, info.parsed_addresses(IPVersion.V4Only), info.port, dict(info.properties)
        )
        if hub is None:
            log.debug("hub_record_ignored", name=name)
            return
        if self._hubs.get(name) != hub:
            self._hubs[name] = hub
            log.info("hub_seen", hub_id=hub.hub_id, host=hub.host, port=hub.port)
            self.changed.set()


async def _reachable(host: str, port: int, *, timeout_s: float) -> bool:
    """Whether something accepts TCP connections at host:port (the handshake only, no request)."""
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def find_hub(
    *, interfaces: Sequence[str], hub_id: str | None = None, within_s: float = 10.0
) -> HubAd | None:
    """Browse until a hub (or `hub_id`) is seen; None after `within_s` seconds."""
    async with HubBrowser(interfaces=interfaces) as browser:
        return await browser.wait_for(hub_id=hub_id, within_s=within_s)


async def list_hubs(*, interfaces: Sequence[str], seconds: float = 3.0) -> list[HubAd]:
    """The hubs advertised after browsing for `seconds`."""
    async with HubBrowser(interfaces=interfaces) as browser:
        await asyncio.sleep(seconds)
        return browser.hubs
