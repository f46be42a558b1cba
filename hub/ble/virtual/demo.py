"""A health post's virtual devices, and a simulator that makes them measure.

Used by the demo, `tecsa-hub run --virtual-devices` and `tecsa-hub ble scan --virtual`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
from typing import TYPE_CHECKING

from hub.ble.virtual.blood_pressure import BloodPressureCuff, BloodPressureReading
from hub.ble.virtual.glucose import GlucoseMeter, GlucoseRecord
from hub.ble.virtual.heart_rate import HeartRateStrap
from hub.ble.virtual.peripheral import ClockStyle, VirtualClock
from hub.ble.virtual.pulse_oximeter import PulseOximeter
from hub.ble.virtual.thermometer import Thermometer
from hub.ble.virtual.weight_scale import WeightScale

if TYPE_CHECKING:
    import random

    from hub.ble.virtual.peripheral import VirtualPeripheral

_KINDS = 6


def health_post_devices(now: dt.datetime, *, count: int = _KINDS) -> list[VirtualPeripheral]:
    """`count` devices cycling through the six kinds, with a little stored data.

    The first six are one of each kind (cuff, thermometer, oximeter, glucose meter, scale,
    heart-rate strap); addresses are D0:00:00:00:HH:LL with the device number.
    """
    local = now.replace(tzinfo=None, microsecond=0)
    devices: list[VirtualPeripheral] = []
    for n in range(1, count + 1):
        address = f"D0:00:00:00:{n >> 8:02X}:{n & 0xFF:02X}"
        kind = (n - 1) % _KINDS
        suffix = "" if n <= _KINDS else f" {n}"
        devices.append(_device(kind, address, suffix, local))
    return devices


def _device(kind: int, address: str, suffix: str, local: dt.datetime) -> VirtualPeripheral:
    if kind == 0:
        return BloodPressureCuff(
            address=address,
            name=f"TECSA BP{suffix}",
            readings=[
                BloodPressureReading(128, 84, 72, timestamp=local - dt.timedelta(minutes=40)),
                BloodPressureReading(146, 95, 88, timestamp=local - dt.timedelta(minutes=20)),
            ],
        )
    if kind == 1:
        return Thermometer(
            address=address,
            name=f"TECSA THERMO{suffix}",
            clock=VirtualClock(local + dt.timedelta(minutes=4), ClockStyle.CURRENT_TIME),
        )
    if kind == 2:  # noqa: PLR2004 - the third kind
        return PulseOximeter(address=address, name=f"TECSA OXI{suffix}")
    if kind == 3:  # noqa: PLR2004 - the fourth kind
        return GlucoseMeter(
            address=address,
            name=f"TECSA GLUCO{suffix}",
            records=[
                GlucoseRecord(
                    sequence=s, base_time=local - dt.timedelta(hours=6 - s), concentration=c
                )
                for s, c in ((1, 0.00092), (2, 0.00131), (3, 0.00178))
            ],
        )
    if kind == 4:  # noqa: PLR2004 - the fifth kind
        return WeightScale(address=address, name=f"TECSA SCALE{suffix}")
    return HeartRateStrap(address=address, name=f"TECSA HR{suffix}")


async def simulate(
    devices: list[VirtualPeripheral],
    *,
    stop: asyncio.Event,
    interval_s: float,
    rng: random.Random,
) -> int:
    """Until `stop`, every `interval_s` one device measures (as a health agent would use it).

    Cuffs, thermometers, oximeters and scales keep a measurement in memory until the hub takes
    it; a glucose meter stores a record and drops its link so that the hub reconnects and
    downloads it; a heart-rate strap's beat is live only. Returns how many measurements were made.
    """
    next_seq = {id(d): len(d.records) + 1 for d in devices if isinstance(d, GlucoseMeter)}
    made = 0
    for device in itertools.cycle(rng.sample(devices, len(devices))):
        if stop.is_set():
            break
        if isinstance(device, BloodPressureCuff | Thermometer):
            await device.measure()
        elif isinstance(device, PulseOximeter):
            await device.measure(rng.randint(88, 99), rng.randint(55, 115))
        elif isinstance(device, WeightScale):
            await device.weigh(round(rng.gauss(62, 11), 1))
        elif isinstance(device, GlucoseMeter):
            seq = next_seq[id(device)]
            next_seq[id(device)] = seq + 1
            device.add_record(
                GlucoseRecord(
                    sequence=seq,
                    base_time=device.clock_time().replace(microsecond=0),
                    concentration=round(rng.uniform(0.0007, 0.0025), 6),
                )
            )
            if device.is_connected:
                await device.disconnect()
        elif isinstance(device, HeartRateStrap):
            await device.beat(rng.randint(55, 115))
        made += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
    return made
