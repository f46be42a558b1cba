"""A cuff that requires bonding, driven through bleak: refused before pair(), readings after."""

import asyncio

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_16

from hub.ble.bumble_backend import VirtualRadio
from hub.ble.virtual import BloodPressureCuff, BloodPressureReading

WAIT = 10.0
BPM = normalize_uuid_16(0x2A35)
FEATURE = normalize_uuid_16(0x2A49)
INSUFFICIENT_ENCRYPTION = 0x0F
STORED = [
    BloodPressureReading(
        systolic=138, diastolic=88, mean_arterial=120, pulse=60, user_id=1, status=0x27
    ),
    BloodPressureReading(systolic=121, diastolic=79, pulse=66),
]


@pytest.fixture
async def radio():
    async with VirtualRadio() as virtual_radio:
        yield virtual_radio


async def connect(radio, cuff, **kwargs):
    device = await BleakScanner.find_device_by_filter(
        lambda d, _ad: d.address == cuff.address, timeout=WAIT, backend=radio.scanner_backend
    )
    client = BleakClient(device, backend=radio.client_backend, **kwargs)
    await client.connect()
    return client


async def collect(queue, count):
    return [await asyncio.wait_for(queue.get(), WAIT) for _ in range(count)]


async def test_access_is_refused_until_paired_then_stored_readings_arrive_right_after_subscribing(
    radio,
):
    cuff = await radio.add(BloodPressureCuff(address="F1:00:00:00:00:01", readings=STORED))
    frames = asyncio.Queue()
    client = await connect(radio, cuff)
    try:
        with pytest.raises(BleakGATTProtocolError) as read_refused:
            await client.read_gatt_char(FEATURE)
        with pytest.raises(BleakGATTProtocolError) as subscribe_refused:
            await client.start_notify(BPM, lambda _c, data: frames.put_nowait(bytes(data)))
        assert cuff.memory == [r.encode() for r in STORED]  # nothing leaked before pairing

        await client.pair()
        feature = await client.read_gatt_char(FEATURE)
        await client.start_notify(BPM, lambda _c, data: frames.put_nowait(bytes(data)))
        received = await collect(frames, 2)
        new = await cuff.measure(sys=120, dia=80, pulse=70)
        received.append(await asyncio.wait_for(frames.get(), WAIT))
    finally:
        await client.disconnect()

    assert read_refused.value.code == INSUFFICIENT_ENCRYPTION
    assert subscribe_refused.value.code == INSUFFICIENT_ENCRYPTION
    assert feature == bytearray(b"\x07\x00")
    assert received == [STORED[0].encode(), STORED[1].encode(), new]
    assert received[0] == bytes.fromhex("1C 8A 00 58 00 78 00 3C 00 01 27 00")  # BP1 without time
    assert new[:7] == bytes.fromhex("06 78 00 50 00 5D 00")  # 120/80, MAP 93, time + pulse follow
    assert new[-2:] == bytes.fromhex("46 00")  # pulse 70
    assert cuff.memory == []


async def test_the_bond_is_reused_on_the_next_connection_without_pairing_again(radio):
    cuff = await radio.add(BloodPressureCuff(address="F1:00:00:00:00:02"))
    first = await connect(radio, cuff, pair=True)
    await first.disconnect()

    second = await connect(radio, cuff)
    try:
        assert await second.read_gatt_char(FEATURE) == bytearray(b"\x07\x00")
    finally:
        await second.disconnect()


async def test_unpair_forgets_the_bond(radio):
    cuff = await radio.add(BloodPressureCuff(address="F1:00:00:00:00:03"))
    client = await connect(radio, cuff, pair=True)
    await client.unpair()
    assert not client.is_connected

    again = await connect(radio, cuff)
    try:
        with pytest.raises(BleakGATTProtocolError):
            await again.read_gatt_char(FEATURE)
    finally:
        await again.disconnect()


async def test_a_cuff_that_lost_its_bond_makes_the_stored_keys_fail(radio):
    cuff = await radio.add(BloodPressureCuff(address="F1:00:00:00:00:04"))
    client = await connect(radio, cuff, pair=True)
    await client.disconnect()
    await cuff.forget_bonds()

    again = await connect(radio, cuff)
    try:
        with pytest.raises(BleakError):
            await again.read_gatt_char(FEATURE)
    finally:
        await again.disconnect()


async def test_a_cuff_that_refuses_pairing_raises_bleak_error(radio):
    cuff = await radio.add(BloodPressureCuff(address="F1:00:00:00:00:05", accept_pairing=False))
    client = await connect(radio, cuff)
    try:
        with pytest.raises(BleakError, match="pairing"):
            await client.pair()
    finally:
        await client.disconnect()
