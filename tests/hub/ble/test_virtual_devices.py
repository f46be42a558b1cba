"""Each remaining virtual profile delivers exactly the bytes it encoded, through bleak."""

import asyncio

import pytest
from bleak import BleakClient
from bleak.uuids import normalize_uuid_16

from hub.ble.bumble_backend import VirtualRadio
from hub.ble.virtual import (
    DEFAULT_GARBAGE,
    GarbageDevice,
    HeartRateStrap,
    PulseOximeter,
    Thermometer,
    WeightScale,
    encode,
)

WAIT = 10.0


@pytest.fixture
async def radio():
    async with VirtualRadio() as virtual_radio:
        yield virtual_radio


async def subscribe(client, uuid):
    queue = asyncio.Queue()
    await client.start_notify(
        normalize_uuid_16(uuid), lambda _c, data: queue.put_nowait(bytes(data))
    )
    return queue


async def take(queue, count):
    return [await asyncio.wait_for(queue.get(), WAIT) for _ in range(count)]


async def test_thermometer_indicates_stored_then_new_temperatures(radio):
    stored = encode.temperature_measurement(37.6, temperature_type=4)
    thermo = await radio.add(Thermometer(address="F1:00:00:00:00:01", frames=[stored]))
    async with BleakClient(thermo.address, backend=radio.client_backend) as client:
        queue = await subscribe(client, 0x2A1C)
        first = await take(queue, 1)
        new = await thermo.measure(38.25)
        second = await take(queue, 1)
    assert first == [bytes.fromhex("04 B0 0E 00 FE 04")]
    assert second == [new]
    assert new[1:5] == bytes.fromhex("F1 0E 00 FE")  # 3825 x 10^-2


async def test_heart_rate_notifies_samples_then_beats_and_stop_notify_silences_it(radio):
    samples = [
        encode.heart_rate_measurement(85),
        encode.heart_rate_measurement(255, sensor_contact=2),
    ]
    strap = await radio.add(HeartRateStrap(address="F1:00:00:00:00:02", samples=samples))
    async with BleakClient(strap.address, backend=radio.client_backend) as client:
        queue = await subscribe(client, 0x2A37)
        received = await take(queue, 2)
        beat = await strap.beat(72, rr_intervals=(850,))
        received += await take(queue, 1)
        await client.stop_notify(normalize_uuid_16(0x2A37))
        assert not strap.is_subscribed(0x2A37)
        assert await strap.beat(90) == bytes.fromhex("06 5A")
        assert await client.read_gatt_char(normalize_uuid_16(0x2A38)) == b"\x01"
    assert received == [bytes.fromhex("00 55"), bytes.fromhex("04 FF"), beat]
    assert beat == bytes.fromhex("16 48 52 03")
    assert queue.empty()


async def test_pulse_oximeter_spot_check_and_continuous(radio):
    oxi = await radio.add(PulseOximeter(address="F1:00:00:00:00:03"))
    async with BleakClient(oxi.address, backend=radio.client_backend) as client:
        spot = await subscribe(client, 0x2A5E)
        continuous = await subscribe(client, 0x2A5F)
        measured = await oxi.measure(97, 64)
        streamed = await oxi.stream(95, 90)
        assert await take(spot, 1) == [measured]
        assert await take(continuous, 1) == [streamed]
    assert streamed == bytes.fromhex("00 5F 00 5A 00")
    assert measured[:5] == bytes.fromhex("01 61 00 40 00")


async def test_weight_scale_indicates_stored_weights_after_the_cccd_write(radio):
    stored = [encode.weight_measurement(65.6), encode.weight_measurement(None)]
    scale = await radio.add(WeightScale(address="F1:00:00:00:00:04", frames=stored))
    async with BleakClient(scale.address, backend=radio.client_backend) as client:
        received = await take(await subscribe(client, 0x2A9D), 2)
        feature = await client.read_gatt_char(normalize_uuid_16(0x2A9E))
    assert received == [bytes.fromhex("00 40 33"), bytes.fromhex("00 FF FF")]
    assert feature == bytes.fromhex("3B 00 00 00")
    assert scale.sent == stored


async def test_garbage_device_sends_its_malformed_frames_verbatim(radio):
    junk = await radio.add(GarbageDevice(address="F1:00:00:00:00:05"))
    async with BleakClient(junk.address, backend=radio.client_backend) as client:
        received = await take(await subscribe(client, 0x2A35), len(DEFAULT_GARBAGE))
    assert received == list(DEFAULT_GARBAGE)


async def test_a_peripheral_that_terminates_the_link_calls_the_disconnected_callback(radio):
    strap = await radio.add(HeartRateStrap(address="F1:00:00:00:00:06"))
    gone = asyncio.Event()
    client = BleakClient(
        strap.address, disconnected_callback=lambda _c: gone.set(), backend=radio.client_backend
    )
    await client.connect()
    await asyncio.wait_for(strap.wait_for(lambda: strap.is_connected), WAIT)
    await strap.disconnect()
    await asyncio.wait_for(gone.wait(), WAIT)
    assert not client.is_connected
