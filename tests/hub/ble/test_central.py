"""The BLE central end to end: virtual devices → bleak → parsers → durable SQLite rows."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import pytest

from hub.ble.bumble_backend import VirtualRadio
from hub.ble.central import Backends, Central
from hub.ble.parsers import parse
from hub.ble.profiles import default_profiles_dir, load_profiles
from hub.ble.virtual import (
    BloodPressureCuff,
    BloodPressureReading,
    ClockStyle,
    GarbageDevice,
    GlucoseMeter,
    GlucoseRecord,
    HeartRateStrap,
    PulseOximeter,
    Thermometer,
    VirtualClock,
    WeightScale,
)
from hub.buffer import BondState, Buffer, BufferConfig
from hub.config import BleSettings

WAIT = 15.0
PROFILES = load_profiles(default_profiles_dir())
T0 = dt.datetime(2026, 11, 28, 8, 0, 0)


class Harness:
    """A radio, a buffer and a running central, with a way to wait for stored readings."""

    def __init__(
        self, radio: VirtualRadio, buffer: Buffer, settings: BleSettings | None = None
    ) -> None:
        self.radio = radio
        self.buffer = buffer
        self.changed = asyncio.Condition()
        self.central = Central(
            profiles=PROFILES,
            buffer=buffer,
            settings=settings or BleSettings(max_connections=8),
            backends=Backends(radio.scanner_backend, radio.client_backend),
            on_stored=lambda _r: asyncio.get_running_loop().create_task(self._poke()),
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _poke(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate, timeout: float = WAIT) -> None:
        async def poll() -> None:
            async with self.changed:
                while not predicate():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), 0.05)

        await asyncio.wait_for(poll(), timeout)

    def readings(self, kind: str | None = None):
        rows = [p.reading() for p in self.buffer.iter_unsent()]
        return [r for r in rows if kind is None or r.kind == kind]


@pytest.fixture
def ble_settings():
    return BleSettings(max_connections=8)


@pytest.fixture
async def hub(tmp_path, ble_settings):
    buffer = Buffer.open(BufferConfig(path=tmp_path / "buffer.sqlite3"))
    async with VirtualRadio() as radio:
        harness = Harness(radio, buffer, ble_settings)
        harness.task = asyncio.create_task(harness.central.run(harness.stop))
        try:
            yield harness
        finally:
            harness.stop.set()
            await asyncio.wait_for(harness.task, WAIT)
    buffer.close()


async def test_cuff_requires_bonding_and_its_stored_readings_are_all_kept(hub):
    stored = [
        BloodPressureReading(121, 79, 64, timestamp=T0),
        BloodPressureReading(135, 88, 71, timestamp=T0 + dt.timedelta(minutes=5)),
        BloodPressureReading(142, 91, 80, timestamp=T0 + dt.timedelta(minutes=10)),
    ]
    cuff = await hub.radio.add(BloodPressureCuff(address="F1:00:00:00:00:01", readings=stored))
    await hub.wait_for(lambda: len(hub.readings()) == 3)
    got = sorted(
        (r.components["systolic"].value, r.components["diastolic"].value) for r in hub.readings()
    )
    assert got == [(121.0, 79.0), (135.0, 88.0), (142.0, 91.0)]
    assert {r.device_time for r in hub.readings()} == {s.timestamp for s in stored}
    device = hub.buffer.device("F1:00:00:00:00:01")
    assert device is not None
    assert (device.profile, device.bond_state) == ("blood_pressure", BondState.BONDED)
    await cuff.measure(sys=118, dia=76, pulse=60)
    await hub.wait_for(lambda: len(hub.readings()) == 4)
    assert hub.central.stats.duplicates == 0


async def test_cuff_that_refuses_pairing_stores_nothing_and_is_retried_later(hub):
    await hub.radio.add(
        BloodPressureCuff(
            address="F1:00:00:00:00:02",
            readings=[BloodPressureReading(120, 80, timestamp=T0)],
            accept_pairing=False,
        )
    )
    await hub.wait_for(lambda: hub.central.stats.session_failures >= 1)
    assert hub.readings() == []
    device = hub.buffer.device("F1:00:00:00:00:02")
    assert device is not None
    assert device.bond_state != BondState.BONDED


@pytest.mark.parametrize(
    ("make", "act", "kind", "component", "expected"),
    [
        (
            lambda a: Thermometer(address=a),
            lambda d: d.measure(38.25),
            "body_temperature",
            "temperature",
            38.25,
        ),
        (
            lambda a: HeartRateStrap(address=a),
            lambda d: d.beat(72),
            "heart_rate",
            "heart_rate",
            72.0,
        ),
        (
            lambda a: PulseOximeter(address=a),
            lambda d: d.measure(94, 88),
            "spo2_spot_check",
            "spo2",
            94.0,
        ),
        (lambda a: WeightScale(address=a), lambda d: d.weigh(61.4), "body_weight", "weight", 61.4),
    ],
)
async def test_each_profile_from_discovery_to_durable_rows(
    hub, make, act, kind, component, expected
):
    address = "F2:00:00:00:00:01"
    device = await hub.radio.add(make(address))
    await hub.wait_for(lambda: address in hub.central.connected)

    # Measure until one arrives: a value sent before the hub subscribed is (rightly) not stored.
    async def measure_until_stored() -> None:
        while not hub.readings(kind):
            await act(device)
            with contextlib.suppress(TimeoutError):
                await hub.wait_for(lambda: bool(hub.readings(kind)), 0.5)

    await asyncio.wait_for(measure_until_stored(), WAIT)
    reading = hub.readings(kind)[0]
    assert reading.components[component].value == pytest.approx(expected)
    assert reading.device_id == address
    assert hub.buffer.device(address).profile is not None


def _records(first: int, count: int) -> list[GlucoseRecord]:
    return [
        GlucoseRecord(
            sequence=s, base_time=T0 + dt.timedelta(hours=s), concentration=0.001 + s / 100_000
        )
        for s in range(first, first + count)
    ]


async def test_glucose_download_is_incremental_after_a_reconnect(hub):
    meter = await hub.radio.add(GlucoseMeter(address="F3:00:00:00:00:01", records=_records(1, 3)))
    await hub.wait_for(lambda: len(hub.readings("glucose")) == 3)
    await hub.wait_for(lambda: (hub.buffer.device(meter.address).last_racp_seq or 0) == 3)
    for record in _records(4, 2):
        meter.add_record(record)
    await meter.disconnect()
    await hub.wait_for(lambda: len(hub.readings("glucose")) == 5)
    seqs = sorted(r.device_seq for r in hub.readings("glucose"))
    assert seqs == [1, 2, 3, 4, 5]
    assert meter.requests[0] == bytes.fromhex("0101")  # first time: every record
    assert bytes.fromhex("0103010400") in meter.requests  # then only records >= 4
    assert hub.central.stats.duplicates == 0
    assert [
        r.components["glucose"].value
        for r in sorted(hub.readings("glucose"), key=lambda r: r.device_seq)
    ] == [
        pytest.approx(101.0),
        pytest.approx(102.0),
        pytest.approx(103.0),
        pytest.approx(104.0),
        pytest.approx(105.0),
    ]


async def test_meter_vanishing_mid_download_loses_and_doubles_nothing(hub):
    meter = await hub.radio.add(
        GlucoseMeter(address="F3:00:00:00:00:02", records=_records(1, 5), pause_after=2)
    )
    await hub.wait_for(lambda: len(hub.readings("glucose")) == 2)
    meter.vanish()
    await hub.wait_for(lambda: hub.central.stats.session_failures >= 1)
    meter.pause_after = None
    meter.resume()
    meter.reappear()
    await hub.wait_for(lambda: len(hub.readings("glucose")) == 5, timeout=30)
    assert sorted(r.device_seq for r in hub.readings("glucose")) == [1, 2, 3, 4, 5]
    assert len({r.id for r in hub.readings("glucose")}) == 5


async def test_a_device_sending_garbage_does_not_stop_the_others(hub):
    junk = await hub.radio.add(
        GarbageDevice(
            address="F4:00:00:00:00:01",
            service=0x1809,
            characteristic=0x2A1C,
            requires_bonding=False,
        )
    )
    thermo = await hub.radio.add(Thermometer(address="F4:00:00:00:00:02", frames=[]))
    await hub.wait_for(lambda: hub.central.stats.parse_errors >= 1)

    async def measure_until_stored() -> None:
        while not hub.readings("body_temperature"):
            await thermo.measure(37.1)
            with contextlib.suppress(TimeoutError):
                await hub.wait_for(lambda: bool(hub.readings("body_temperature")), 0.5)

    await asyncio.wait_for(measure_until_stored(), WAIT)
    assert all(r.device_id == thermo.address for r in hub.readings())
    assert junk.address in {d.address for d in hub.buffer.devices()}


async def test_clock_is_set_and_a_refused_write_keeps_the_measured_offset(hub):
    seven_minutes_fast = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=7)
    fast = VirtualClock(seven_minutes_fast, ClockStyle.CURRENT_TIME)
    stubborn = VirtualClock(seven_minutes_fast, ClockStyle.CURRENT_TIME, refuse_writes=True)
    a = await hub.radio.add(Thermometer(address="F5:00:00:00:00:01", clock=fast))
    b = await hub.radio.add(Thermometer(address="F5:00:00:00:00:02", clock=stubborn))
    await hub.wait_for(
        lambda: (
            hub.buffer.device(a.address) is not None
            and hub.buffer.device(a.address).clock_offset_s is not None
        )
    )
    await hub.wait_for(
        lambda: (
            hub.buffer.device(b.address) is not None
            and hub.buffer.device(b.address).clock_offset_s is not None
        )
    )
    assert hub.buffer.device(a.address).clock_offset_s == 0.0
    assert abs(a.clock_time() - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(
        seconds=5
    )
    assert hub.buffer.device(b.address).clock_offset_s == pytest.approx(420, abs=5)


@pytest.mark.parametrize("ble_settings", [BleSettings(max_connections=1, idle_disconnect_s=0.3)])
async def test_connection_slots_are_shared_when_devices_stay_connected(hub):
    first = await hub.radio.add(Thermometer(address="F6:00:00:00:00:01", frames=[]))
    await hub.wait_for(lambda: first.address in hub.central.connected)
    await first.measure(36.6)
    second = await hub.radio.add(Thermometer(address="F6:00:00:00:00:02", frames=[]))
    await second.measure(37.9)  # kept in the thermometer's memory until the hub connects
    await hub.wait_for(lambda: len(hub.readings("body_temperature")) == 2)
    assert sorted(r.components["temperature"].value for r in hub.readings()) == [36.6, 37.9]
    assert len(hub.central.connected) <= 1


@pytest.mark.parametrize(
    "ble_settings",
    [BleSettings(max_connections=1, idle_disconnect_s=30.0, share_after_s=0.5)],
)
async def test_a_device_that_never_falls_silent_shares_its_slot(hub):
    chatty = await hub.radio.add(Thermometer(address="F6:00:00:00:00:03", frames=[]))
    await hub.wait_for(lambda: chatty.address in hub.central.connected)
    stop = asyncio.Event()

    async def measure_without_pause() -> None:
        while not stop.is_set():
            await chatty.measure(36.6)
            await asyncio.sleep(0.05)  # far below idle_disconnect_s: never idle

    talking = asyncio.create_task(measure_without_pause())
    try:
        waiting = await hub.radio.add(Thermometer(address="F6:00:00:00:00:04", frames=[]))
        await waiting.measure(39.4)  # kept in the thermometer's memory until the hub connects
        await hub.wait_for(
            lambda: any(r.components["temperature"].value == 39.4 for r in hub.readings())
        )
    finally:
        stop.set()
        await talking
    assert len(hub.central.connected) <= 1


async def test_a_reading_is_bound_to_the_patient_by_its_corrected_time_not_the_device_clock(hub):
    now = dt.datetime.now(dt.UTC)
    behind = VirtualClock(
        now.replace(tzinfo=None) - dt.timedelta(minutes=7),
        ClockStyle.CURRENT_TIME,
        refuse_writes=True,  # the offset stays: readings are corrected by it
    )
    thermo = await hub.radio.add(Thermometer(address="F5:00:00:00:00:03", clock=behind, frames=[]))
    await hub.wait_for(
        lambda: (
            hub.buffer.device(thermo.address) is not None
            and hub.buffer.device(thermo.address).clock_offset_s is not None
        )
    )
    # bound a minute ago: by the device's own clock the measurement would be 6 minutes earlier
    await hub.buffer.start_encounter(
        thermo.address, "pat-clock", started_at=now - dt.timedelta(minutes=1)
    )
    await thermo.measure(37.2)
    await hub.wait_for(lambda: bool(hub.readings("body_temperature")))
    (reading,) = hub.readings("body_temperature")
    assert reading.patient_id == "pat-clock"
    assert abs(reading.measured_at - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=30)


async def test_and_cuff_gets_its_date_time_written_before_it_releases_readings(hub):
    clock = VirtualClock(dt.datetime(2020, 1, 1, 0, 0), ClockStyle.DATE_TIME)
    cuff = await hub.radio.add(
        BloodPressureCuff(
            address="F7:00:00:00:00:01",
            name="A&D_UA-651_8F1A",
            readings=[BloodPressureReading(133, 85, 70, timestamp=T0)],
            clock=clock,
        )
    )
    await hub.wait_for(lambda: len(hub.readings()) == 1)
    assert hub.buffer.device(cuff.address).profile == "and_ua651"
    assert len(clock.writes) == 1
    written = parse("2a08", clock.writes[0]).value
    assert abs(written - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(seconds=10)
    assert hub.buffer.device(cuff.address).clock_offset_s == 0.0
