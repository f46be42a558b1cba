"""A health post's virtual devices: for the demo and `tecsa-hub ble scan --virtual`."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from hub.ble.virtual.blood_pressure import BloodPressureCuff, BloodPressureReading
from hub.ble.virtual.glucose import GlucoseMeter, GlucoseRecord
from hub.ble.virtual.heart_rate import HeartRateStrap
from hub.ble.virtual.peripheral import ClockStyle, VirtualClock
from hub.ble.virtual.pulse_oximeter import PulseOximeter
from hub.ble.virtual.thermometer import Thermometer
from hub.ble.virtual.weight_scale import WeightScale

if TYPE_CHECKING:
    from hub.ble.virtual.peripheral import VirtualPeripheral


def health_post_devices(now: dt.datetime) -> list[VirtualPeripheral]:
    """One device of each profile, with a little stored data, their clocks a few minutes off."""
    local = now.replace(tzinfo=None, microsecond=0)
    return [
        BloodPressureCuff(
            address="D0:00:00:00:00:01",
            name="TECSA BP",
            readings=[
                BloodPressureReading(128, 84, 72, timestamp=local - dt.timedelta(minutes=40)),
                BloodPressureReading(146, 95, 88, timestamp=local - dt.timedelta(minutes=20)),
            ],
        ),
        Thermometer(
            address="D0:00:00:00:00:02",
            clock=VirtualClock(local + dt.timedelta(minutes=4), ClockStyle.CURRENT_TIME),
        ),
        PulseOximeter(address="D0:00:00:00:00:03"),
        GlucoseMeter(
            address="D0:00:00:00:00:04",
            records=[
                GlucoseRecord(
                    sequence=s, base_time=local - dt.timedelta(hours=6 - s), concentration=c
                )
                for s, c in ((1, 0.00092), (2, 0.00131), (3, 0.00178))
            ],
        ),
        WeightScale(address="D0:00:00:00:00:05"),
        HeartRateStrap(address="D0:00:00:00:00:06"),
    ]
