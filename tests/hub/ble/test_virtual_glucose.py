"""Glucose downloads over RACP through bleak, including a meter that dies mid-download."""

import asyncio
import datetime as dt

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_16

from hub.ble.bumble_backend import VirtualRadio
from hub.ble.virtual import GlucoseMeter, GlucoseRecord, evaluate_racp
from hub.ble.virtual.encode import racp_response

WAIT = 10.0
MEASUREMENT = normalize_uuid_16(0x2A18)
CONTEXT = normalize_uuid_16(0x2A34)
RACP = normalize_uuid_16(0x2A52)
BASE = dt.datetime(2025, 3, 14, 7, 30, 0)
RECORDS = [
    GlucoseRecord(sequence=n, base_time=BASE + dt.timedelta(hours=n), concentration=0.001 * n)
    for n in range(1, 6)
]


@pytest.fixture
async def radio():
    async with VirtualRadio() as virtual_radio:
        yield virtual_radio


class Download:
    """What a hub's download loop sees: measurements, contexts and RACP responses, in order."""

    def __init__(self):
        self.measurements = asyncio.Queue()
        self.contexts = asyncio.Queue()
        self.racp = asyncio.Queue()
        self.disconnected = asyncio.Event()

    async def start(self, client):
        await client.start_notify(MEASUREMENT, lambda _c, d: self.measurements.put_nowait(bytes(d)))
        await client.start_notify(CONTEXT, lambda _c, d: self.contexts.put_nowait(bytes(d)))
        await client.start_notify(RACP, lambda _c, d: self.racp.put_nowait(bytes(d)))

    async def response(self):
        return await asyncio.wait_for(self.racp.get(), WAIT)

    def drain(self, queue):
        items = []
        while not queue.empty():
            items.append(queue.get_nowait())
        return items


async def open_meter(radio, meter):
    await radio.add(meter)
    download = Download()
    device = await BleakScanner.find_device_by_filter(
        lambda _d, _ad: True,
        timeout=WAIT,
        service_uuids=[normalize_uuid_16(0x1808)],
        backend=radio.scanner_backend,
    )
    client = BleakClient(
        device,
        disconnected_callback=lambda _c: download.disconnected.set(),
        pair=True,
        backend=radio.client_backend,
    )
    await client.connect()
    await download.start(client)
    return client, download


async def test_report_all_streams_every_record_then_success(radio):
    records = [*RECORDS[:4], GlucoseRecord(sequence=5, base_time=BASE, meal=1)]
    client, download = await open_meter(
        radio, GlucoseMeter(address="F1:00:00:00:00:01", records=records)
    )
    try:
        await client.write_gatt_char(RACP, b"\x01\x01", response=True)
        done = await download.response()
    finally:
        await client.disconnect()

    assert done == bytes.fromhex("06 00 01 01")
    assert download.drain(download.measurements) == [r.measurement() for r in records]
    assert download.drain(download.contexts) == [bytes.fromhex("02 05 00 01")]


async def test_report_greater_or_equal_sends_only_newer_records(radio):
    client, download = await open_meter(
        radio, GlucoseMeter(address="F1:00:00:00:00:02", records=RECORDS)
    )
    try:
        await client.write_gatt_char(RACP, b"\x01\x03\x01\x04\x00", response=True)
        done = await download.response()
    finally:
        await client.disconnect()

    assert done == bytes.fromhex("06 00 01 01")
    received = download.drain(download.measurements)
    assert received == [RECORDS[3].measurement(), RECORDS[4].measurement()]
    assert [int.from_bytes(frame[1:3], "little") for frame in received] == [4, 5]


async def test_number_of_records_no_records_and_unsupported_requests(radio):
    meter = GlucoseMeter(address="F1:00:00:00:00:03", records=RECORDS)
    client, download = await open_meter(radio, meter)
    try:
        replies = []
        for request in (
            "04 01",
            "01 03 01 09 00",
            "0C 01",
            "01 00",
            "01 03 02 00 00 00 00 00 00 00",
        ):
            await client.write_gatt_char(RACP, bytes.fromhex(request), response=True)
            replies.append(await download.response())
    finally:
        await client.disconnect()

    assert replies == [
        bytes.fromhex("05 00 05 00"),
        bytes.fromhex("06 00 01 06"),  # no records found is a success case
        bytes.fromhex("06 00 0C 02"),
        bytes.fromhex("06 00 01 03"),
        bytes.fromhex("06 00 01 09"),
    ]
    assert download.drain(download.measurements) == []
    assert meter.requests[0] == b"\x04\x01"


async def test_racp_without_indications_enabled_is_cccd_improperly_configured(radio):
    await radio.add(GlucoseMeter(address="F1:00:00:00:00:04", records=RECORDS))
    async with BleakClient("F1:00:00:00:00:04", pair=True, backend=radio.client_backend) as client:
        with pytest.raises(BleakGATTProtocolError) as caught:
            await client.write_gatt_char(RACP, b"\x01\x01", response=True)
    assert caught.value.code == 0xFD


async def test_abort_stops_a_report_midway(radio):
    meter = GlucoseMeter(address="F1:00:00:00:00:05", records=RECORDS, pause_after=2)
    client, download = await open_meter(radio, meter)
    try:
        await client.write_gatt_char(RACP, b"\x01\x01", response=True)
        await asyncio.wait_for(meter.wait_for(lambda: meter.paused), WAIT)
        with pytest.raises(BleakGATTProtocolError) as busy:
            await client.write_gatt_char(RACP, b"\x04\x01", response=True)
        await client.write_gatt_char(RACP, b"\x03\x00", response=True)
        aborted = await download.response()
    finally:
        await client.disconnect()

    assert busy.value.code == 0xFE
    assert aborted == bytes.fromhex("06 00 03 01")
    assert download.drain(download.measurements) == [r.measurement() for r in RECORDS[:2]]
    assert download.drain(download.racp) == []


async def test_meter_vanishing_mid_download_disconnects_and_bleak_raises(radio):
    meter = GlucoseMeter(address="F1:00:00:00:00:06", records=RECORDS, pause_after=3)
    client, download = await open_meter(radio, meter)
    await client.write_gatt_char(RACP, b"\x01\x01", response=True)
    await asyncio.wait_for(meter.wait_for(lambda: meter.paused), WAIT)

    meter.vanish()
    await asyncio.wait_for(download.disconnected.wait(), WAIT)

    assert not client.is_connected
    assert download.drain(download.measurements) == [r.measurement() for r in RECORDS[:3]]
    assert download.drain(download.racp) == []
    # bleak's own errors once the link is gone (BlueZ also drops the service tree on disconnect)
    with pytest.raises(BleakError, match="Service Discovery has not been performed"):
        await client.write_gatt_char(RACP, b"\x01\x01", response=True)
    with pytest.raises(BleakError, match="Not connected"):
        await client.start_notify(MEASUREMENT, lambda _c, _d: None)


async def test_a_read_in_flight_when_the_meter_vanishes_raises_bleak_error(radio):
    meter = GlucoseMeter(address="F1:00:00:00:00:07", records=RECORDS, requires_bonding=False)
    await radio.add(meter)
    client = BleakClient(meter.address, backend=radio.client_backend)
    await client.connect()
    read = asyncio.ensure_future(client.read_gatt_char(normalize_uuid_16(0x2A51)))
    meter.vanish()
    with pytest.raises(BleakError):
        await asyncio.wait_for(read, WAIT)
    assert not client.is_connected


@pytest.mark.parametrize(
    ("request_hex", "expected_reply", "selected"),
    [
        ("01 01", None, (1, 2, 3)),
        ("01 03 01 02 00", None, (2, 3)),
        ("01 02 01 02 00", None, (1, 2)),
        ("01 04 01 02 00 03 00", None, (2, 3)),
        ("01 05", None, (1,)),
        ("01 06", None, (3,)),
        ("04 01", "05 00 03 00", (1, 2, 3)),
        ("02 01", "06 00 02 01", (1, 2, 3)),
        ("03 00", "06 00 03 01", ()),
        ("03 01", "06 00 03 03", ()),
        ("01 03 01 09 00", "06 00 01 06", ()),
        ("01 04 01 03 00 02 00", "06 00 01 05", ()),
        ("01 03 01 02", "06 00 01 05", ()),
        ("01 07", "06 00 01 04", ()),
        ("", "06 00 00 02", ()),
    ],
)
def test_racp_evaluation_without_a_radio(request_hex, expected_reply, selected):
    outcome = evaluate_racp(bytes.fromhex(request_hex), [3, 1, 2])
    assert outcome.reply == (None if expected_reply is None else bytes.fromhex(expected_reply))
    assert outcome.selected == selected


def test_racp_response_layout():
    assert racp_response(1, 1) == bytes.fromhex("06 00 01 01")
