"""Virtual BLE health devices (bumble GATT servers) for tests and the demo, and their encoders."""

from hub.ble.virtual.blood_pressure import BloodPressureCuff, BloodPressureReading
from hub.ble.virtual.garbage import DEFAULT_GARBAGE, GarbageDevice
from hub.ble.virtual.glucose import GlucoseMeter, GlucoseRecord
from hub.ble.virtual.heart_rate import HeartRateStrap
from hub.ble.virtual.peripheral import ClockStyle, DeviceInfo, VirtualClock, VirtualPeripheral
from hub.ble.virtual.pulse_oximeter import PulseOximeter
from hub.ble.virtual.racp import RacpOutcome, evaluate_racp
from hub.ble.virtual.thermometer import Thermometer
from hub.ble.virtual.weight_scale import WeightScale

__all__ = [
    "DEFAULT_GARBAGE",
    "BloodPressureCuff",
    "BloodPressureReading",
    "ClockStyle",
    "DeviceInfo",
    "GarbageDevice",
    "GlucoseMeter",
    "GlucoseRecord",
    "HeartRateStrap",
    "PulseOximeter",
    "RacpOutcome",
    "Thermometer",
    "VirtualClock",
    "VirtualPeripheral",
    "WeightScale",
    "evaluate_racp",
]
