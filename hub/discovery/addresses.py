"""Which IPv4 addresses the hub advertises on: configured addresses, or interfaces by name.

`discovery.interfaces` lists IPv4 addresses (`192.168.1.20`) or interface names (`wlan0`). A
name is resolved to the interface's current IPv4 addresses each time the daemon looks, so a hub
whose DHCP lease changes, or whose Wi-Fi comes up after boot, is re-announced on its new address
(`Discovery.rebind`). An interface that is down or absent contributes nothing and is not an error:
it is logged and looked at again.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

INTERFACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}")
"""A Linux interface name (at most 15 characters: IFNAMSIZ - 1)."""


class Adapter(Protocol):
    """What `ifaddr.get_adapters()` returns per interface (the part used here)."""

    @property
    def name(self) -> str: ...  # noqa: D102 - ifaddr's attribute

    @property
    def ips(self) -> Sequence[_Ip]: ...  # noqa: D102 - ifaddr's attribute


class _Ip(Protocol):
    @property
    def ip(self) -> str | tuple[str, int, int]: ...


def is_ipv4(entry: str) -> bool:
    """True when `entry` is an IPv4 address literal."""
    try:
        ipaddress.IPv4Address(entry)
    except ValueError:
        return False
    return True


def check_entry(entry: str) -> str:
    """`entry` if it is an IPv4 address or an interface name, else ValueError saying which."""
    if is_ipv4(entry) or INTERFACE_NAME.fullmatch(entry):
        return entry
    raise ValueError(
        f"{entry!r} is neither an IPv4 address (192.168.1.20) nor an interface name (wlan0)"
    )


def resolve(
    entries: Iterable[str], adapters: Callable[[], Iterable[Adapter]] | None = None
) -> tuple[str, ...]:
    """The IPv4 addresses `entries` stand for now, in order, without repeats.

    Addresses are kept as written; names become their interface's IPv4 addresses (none when the
    interface is down or absent). `adapters` defaults to `ifaddr.get_adapters`.
    """
    entries = list(entries)
    names = [e for e in entries if not is_ipv4(e)]
    by_name: dict[str, list[str]] = {}
    if names:
        if adapters is None:
            import ifaddr  # noqa: PLC0415 - zeroconf's own dependency, only needed for names

            adapters = ifaddr.get_adapters
        for adapter in adapters():
            ips = [ip.ip for ip in adapter.ips if isinstance(ip.ip, str) and is_ipv4(ip.ip)]
            by_name.setdefault(adapter.name, []).extend(ips)
    out: list[str] = []
    for entry in entries:
        for address in [entry] if is_ipv4(entry) else by_name.get(entry, []):
            if address not in out:
                out.append(address)
    return tuple(out)
