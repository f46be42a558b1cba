"""The hub follows its interfaces' addresses and re-announces itself when they change."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from hub.config import DiscoverySettings
from hub.discovery import HUB_SERVICE, Discovery, HubRecord
from hub.discovery.addresses import check_entry, resolve

FINGERPRINT = "cd" * 32


@dataclass
class Ip:
    ip: str | tuple[str, int, int]


@dataclass
class Adapter:
    name: str
    ips: list[Ip]


def adapters(*pairs: tuple[str, list[str | tuple[str, int, int]]]):
    return lambda: [Adapter(name, [Ip(ip) for ip in ips]) for name, ips in pairs]


def test_names_resolve_to_their_ipv4_addresses_and_literals_stay():
    found = adapters(
        ("wlan0", ["192.168.4.20", ("fe80::1", 0, 2)]), ("eth0", ["10.0.0.5", "10.0.0.6"])
    )
    assert resolve(["wlan0", "10.9.9.9", "eth0", "192.168.4.20"], found) == (
        "192.168.4.20",
        "10.9.9.9",
        "10.0.0.5",
        "10.0.0.6",
    )


def test_an_interface_that_is_down_or_absent_contributes_nothing():
    assert resolve(["wlan0", "usb0"], adapters(("wlan0", []))) == ()


def test_literal_addresses_need_no_lookup():
    def never():
        raise AssertionError("no lookup for literal addresses")

    assert resolve(["127.0.0.1"], never) == ("127.0.0.1",)


@pytest.mark.parametrize("entry", ["wlan0", "eth0.12", "enp3s0", "127.0.0.1", "192.168.1.20"])
def test_addresses_and_interface_names_are_accepted(entry):
    assert check_entry(entry) == entry
    assert DiscoverySettings(interfaces=(entry,)).interfaces == (entry,)


@pytest.mark.parametrize(
    "entry", ["", "a name with spaces", "wlan0;reboot", "x" * 16, "::1", "-eth0", "10.0.0.1/24"]
)
def test_anything_else_is_refused_with_what_was_expected(entry):
    with pytest.raises(ValueError, match="neither an IPv4 address"):
        check_entry(entry)


def test_an_empty_list_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        DiscoverySettings(interfaces=())


async def _advertised_addresses(zc: AsyncZeroconf, name: str) -> list[str]:
    info = AsyncServiceInfo(HUB_SERVICE, name)
    if not await info.async_request(zc.zeroconf, 3000):
        return []
    return sorted(info.parsed_addresses(IPVersion.V4Only))


async def test_a_new_address_is_re_announced_and_the_old_one_withdrawn():
    record = HubRecord("hub-moves-01", 8443, FINGERPRINT)
    hub = Discovery(record, interfaces=["127.0.0.1"])
    phone = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        await hub.start()
        assert await _advertised_addresses(phone, record.instance()) == ["127.0.0.1"]
        assert not await hub.rebind(["127.0.0.1"])  # unchanged: nothing happens

        assert await hub.rebind(["127.0.0.2"])
        assert hub.running
        assert hub.addresses == ("127.0.0.2",)
        # the goodbye on the old address made the phone forget it; asking again finds the new one
        for _ in range(20):
            if await _advertised_addresses(phone, record.instance()) == ["127.0.0.2"]:
                break
            await asyncio.sleep(0.25)
        assert await _advertised_addresses(phone, record.instance()) == ["127.0.0.2"]

        assert await hub.rebind([])  # the interface lost its address: withdrawn
        assert not hub.running
    finally:
        await hub.close()
        await phone.async_close()
