"""Discovery and connection of virtual devices through bleak's public API only."""

import asyncio
import datetime as dt

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDeviceNotFoundError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_16
from bleak_retry_connector import BleakClientWithServiceCache, establish_connection

from hub.ble.bumble_backend import VirtualDeviceDetails, VirtualRadio
from hub.ble.virtual import (
    BloodPressureCuff,
    ClockStyle,
    GarbageDevice,
    GlucoseMeter,
    HeartRateStrap,
    PulseOximeter,
    Thermometer,
    VirtualClock,
    WeightScale,
)

WAIT = 10.0


@pytest.fixture
async def radio():
    async with VirtualRadio() as virtual_radio:
        yield virtual_radio


async def find(radio, service: int):
    return await BleakScanner.find_device_by_filter(
        lambda _d, _ad: True,
        timeout=WAIT,
        service_uuids=[normalize_uuid_16(service)],
        backend=radio.scanner_backend,
    )


async def scan_until(radio, addresses, **scanner_kwargs):
    """Scan until every address was heard; return {address: (BLEDevice, AdvertisementData)}."""
    wanted = {a.upper() for a in addresses}
    seen = {}
    async with BleakScanner(backend=radio.scanner_backend, **scanner_kwargs) as scanner:
        async with asyncio.timeout(WAIT):
            async for device, adv in scanner.advertisement_data():
                if device.address in wanted:
                    seen[device.address] = (device, adv)
                if wanted <= seen.keys():
                    return seen
    return seen


PROFILES = [
    (BloodPressureCuff, 0x1810, "TECSA BP"),
    (Thermometer, 0x1809, "TECSA THERMO"),
    (HeartRateStrap, 0x180D, "TECSA HR"),
    (PulseOximeter, 0x1822, "TECSA OXI"),
    (GlucoseMeter, 0x1808, "TECSA GLUCO"),
    (WeightScale, 0x181D, "TECSA SCALE"),
]


@pytest.mark.parametrize(("factory", "service", "name"), PROFILES)
async def test_each_profile_is_found_by_its_service_uuid_with_its_advertisement(
    radio, factory, service, name
):
    device = await radio.add(
        factory(address="F1:00:00:00:00:01", manufacturer_data={0x0059: b"\x01\x02"}, rssi=-47)
    )
    await radio.add(GarbageDevice(address="F1:00:00:00:00:02", service=0xFFF0))

    found = await find(radio, service)
    seen = await scan_until(radio, [device.address], service_uuids=[normalize_uuid_16(service)])

    assert found is not None
    assert found.address == "F1:00:00:00:00:01"
    assert found.name == name
    assert isinstance(found.details, VirtualDeviceDetails)
    _ble_device, adv = seen[device.address]
    assert adv.local_name == name
    assert adv.service_uuids == [normalize_uuid_16(service)]
    assert adv.manufacturer_data == {0x0059: b"\x01\x02"}
    assert adv.rssi == -47


async def test_service_filter_hides_other_devices(radio):
    await radio.add(Thermometer(address="F1:00:00:00:00:01"))
    await radio.add(HeartRateStrap(address="F1:00:00:00:00:02"))
    thermo = normalize_uuid_16(0x1809)

    seen = await scan_until(radio, ["F1:00:00:00:00:01"], service_uuids=[thermo])
    everything = await scan_until(radio, ["F1:00:00:00:00:01", "F1:00:00:00:00:02"])

    assert set(seen) == {"F1:00:00:00:00:01"}
    assert set(everything) == {"F1:00:00:00:00:01", "F1:00:00:00:00:02"}


async def test_discover_returns_advertisement_data(radio):
    await radio.add(WeightScale(address="F1:00:00:00:00:09"))
    await scan_until(radio, ["F1:00:00:00:00:09"])  # the device is on the air

    result = await BleakScanner.discover(
        timeout=0.5, return_adv=True, backend=radio.scanner_backend
    )

    _device, adv = result["F1:00:00:00:00:09"]
    assert adv.local_name == "TECSA SCALE"


async def test_twenty_devices_on_one_radio_are_discovered_and_connected(radio):
    addresses = [f"F2:00:00:00:00:{i:02X}" for i in range(1, 21)]
    for index, address in enumerate(addresses):
        await radio.add(Thermometer(address=address, name=f"THERMO {index:02d}"))

    seen = await scan_until(radio, addresses)
    assert len(seen) == 20

    clients = []
    try:
        for address in addresses:
            device, _adv = seen[address]
            client = await establish_connection(
                BleakClientWithServiceCache, device, device.name, backend=radio.client_backend
            )
            clients.append(client)
        names = [bytes(await c.read_gatt_char(normalize_uuid_16(0x2A00))) for c in clients]
        assert names == [f"THERMO {i:02d}".encode() for i in range(20)]
        assert all(c.is_connected for c in clients)
    finally:
        for client in clients:
            await client.disconnect()


async def test_connect_by_unknown_address_raises_device_not_found(radio):
    client = BleakClient("F9:99:99:99:99:99", backend=radio.client_backend, timeout=1.0)
    with pytest.raises(BleakDeviceNotFoundError):
        await client.connect()


async def test_connect_to_a_silent_device_times_out(radio):
    strap = await radio.add(HeartRateStrap(address="F1:00:00:00:00:05"))
    strap.vanish()
    client = BleakClient(strap.address, backend=radio.client_backend, timeout=0.2)
    with pytest.raises(TimeoutError):
        await client.connect()
    strap.reappear()
    async with BleakClient(strap.address, backend=radio.client_backend) as again:
        assert again.is_connected


async def test_services_mtu_and_device_information(radio):
    oxi = await radio.add(PulseOximeter(address="F1:00:00:00:00:06", max_mtu=185, battery_level=42))
    device = await find(radio, 0x1822)

    async with BleakClient(device, backend=radio.client_backend) as client:
        uuids = {s.uuid for s in client.services}
        char = client.services.get_characteristic(normalize_uuid_16(0x2A5E))
        assert {normalize_uuid_16(u) for u in (0x1822, 0x180A, 0x180F)} <= uuids
        assert char.properties == ["indicate"]
        assert client.mtu_size == 185
        assert char.max_write_without_response_size == 182
        assert await client.read_gatt_char(normalize_uuid_16(0x2A60)) == oxi.features
        assert await client.read_gatt_char(normalize_uuid_16(0x2A19)) == bytearray([42])
        assert await client.read_gatt_char(normalize_uuid_16(0x2A24)) == b"PulseOximeter"


async def test_services_filter_limits_discovery(radio):
    await radio.add(HeartRateStrap(address="F1:00:00:00:00:07"))
    device = await find(radio, 0x180D)
    wanted = [normalize_uuid_16(0x180D)]
    async with BleakClient(device, services=wanted, backend=radio.client_backend) as client:
        assert [s.uuid for s in client.services] == wanted


async def test_current_time_read_write_and_notify(radio):
    clock = VirtualClock(time=dt.datetime(2020, 1, 1, 0, 0, 0))
    scale = await radio.add(WeightScale(address="F1:00:00:00:00:08", clock=clock))
    device = await find(radio, 0x181D)
    cts = normalize_uuid_16(0x2A2B)
    notified = asyncio.Queue()

    async with BleakClient(device, backend=radio.client_backend) as client:
        before = await client.read_gatt_char(cts)
        await client.start_notify(cts, lambda _c, data: notified.put_nowait(bytes(data)))
        new_time = bytes.fromhex("E8 07 06 06 0C 04 2C 04 00 01")
        await client.write_gatt_char(cts, new_time, response=True)
        after = await client.read_gatt_char(cts)
        note = await asyncio.wait_for(notified.get(), WAIT)

    assert before == bytes.fromhex("E4 07 01 01 00 00 00 03 00 00")  # 2020-01-01 was a Wednesday
    assert scale.clock.time == dt.datetime(2024, 6, 6, 12, 4, 44)
    assert clock.writes == [new_time[:7] + new_time[7:]]
    assert after[:8] == new_time[:8]
    assert note == bytes.fromhex("E8 07 06 06 0C 04 2C 04 00 01")


async def test_a_refused_clock_write_is_application_error_0x80(radio):
    clock = VirtualClock(time=dt.datetime(2020, 1, 1), refuse_writes=True)
    await radio.add(Thermometer(address="F1:00:00:00:00:0A", clock=clock))
    device = await find(radio, 0x1809)
    async with BleakClient(device, backend=radio.client_backend) as client:
        with pytest.raises(BleakGATTProtocolError) as caught:
            await client.write_gatt_char(normalize_uuid_16(0x2A2B), bytes(10), response=True)
    assert caught.value.code == 0x80
    assert clock.writes == []


async def test_vendor_date_time_is_written_without_response(radio):
    clock = VirtualClock(time=dt.datetime(2020, 1, 1), style=ClockStyle.DATE_TIME)
    cuff = await radio.add(
        BloodPressureCuff(address="F1:00:00:00:00:0B", clock=clock, requires_bonding=False)
    )
    device = await find(radio, 0x1810)
    date_time = normalize_uuid_16(0x2A08)
    async with BleakClient(device, backend=radio.client_backend) as client:
        assert client.services.get_service(normalize_uuid_16(0x1805)) is None
        await client.write_gatt_char(
            date_time, bytes.fromhex("E9 07 03 0E 07 1E 00"), response=False
        )
        await asyncio.wait_for(cuff.wait_for(lambda: bool(clock.writes)), WAIT)
        assert await client.read_gatt_char(date_time) == bytes.fromhex("E9 07 03 0E 07 1E 00")
    assert clock.time == dt.datetime(2025, 3, 14, 7, 30, 0)
