"""Pure parsers for the Bluetooth SIG health characteristics: bytes in, frozen values out.

Every parser takes the value of one GATT notification, indication or read as `bytes` and returns
a frozen value, or raises `ParseError`; nothing else escapes, whatever the bytes. No I/O, no
clock, no logging. `parse(characteristic, data)` picks the parser; `to_json_dict` renders any
result.

Strictness: a value must be exactly as long as its flags declare (the heart rate's RR-intervals
excepted, which repeat to the end), reserved flag bits are refused because a future field or
unit could hide behind them, and impossible dates (month 13, 30 February) are refused. IEEE-11073
special values (NaN, NRes, ±INFINITY, reserved) become `Quantity.value = None` plus a
``value_<special>`` flag, never a number.

A measurement whose flags include one of `NON_PATIENT_FLAGS` has ``patient_reading=False``:
``test_data``/``demo_data``/``measurement_unavailable``/``invalid_measurement`` (PLX status),
``control_solution`` (glucose),
``measurement_unsuccessful`` (weight 0xFFFF), ``no_value`` (no component has a value) and
``intermediate`` (0x2A36 and 0x2A1E, shown while the device is still measuring). A PLX
spot-check with ``device_clock_not_set`` stays a patient reading: the value is sound, only its
time is not, so ``device_time`` is None and the hub dates it by when it received it.

Quirks apply only when the caller passes their names (a device profile lists them):

* ``beurer_bm85`` (0x2A35/0x2A36): reserved flag bits are ignored, the user id byte is always
  present, pulse rate and measurement status are big-endian, and a mean arterial pressure of
  0x0000 means "not computed". See `hub.ble.parsers.quirks`.
"""

from __future__ import annotations

from hub.ble.parsers.blood_pressure import BloodPressureFeature
from hub.ble.parsers.current_time import (
    CurrentTime,
    LocalTimeInformation,
    build_current_time,
)
from hub.ble.parsers.date_time import DateTime, build_date_time
from hub.ble.parsers.dispatch import PARSERS, Result, normalize_uuid16, parse, to_json_dict
from hub.ble.parsers.errors import ParseError, UnknownCharacteristic
from hub.ble.parsers.glucose import GlucoseFeature
from hub.ble.parsers.pulse_oximeter import PlxFeatures
from hub.ble.parsers.quirks import KNOWN_QUIRKS
from hub.ble.parsers.racp import (
    RacpNumberOfRecords,
    RacpResponse,
    build_abort_operation,
    build_delete_all_records,
    build_report_all_records,
    build_report_number_of_records,
    build_report_records_from,
)
from hub.ble.parsers.thermometer import TemperatureType
from hub.ble.parsers.values import NON_PATIENT_FLAGS, Measurement, Quantity
from hub.ble.parsers.weight_scale import WeightScaleFeature

__all__ = [
    "KNOWN_QUIRKS",
    "NON_PATIENT_FLAGS",
    "PARSERS",
    "BloodPressureFeature",
    "CurrentTime",
    "DateTime",
    "GlucoseFeature",
    "LocalTimeInformation",
    "Measurement",
    "ParseError",
    "PlxFeatures",
    "Quantity",
    "RacpNumberOfRecords",
    "RacpResponse",
    "Result",
    "TemperatureType",
    "UnknownCharacteristic",
    "WeightScaleFeature",
    "build_abort_operation",
    "build_current_time",
    "build_date_time",
    "build_delete_all_records",
    "build_report_all_records",
    "build_report_number_of_records",
    "build_report_records_from",
    "normalize_uuid16",
    "parse",
    "to_json_dict",
]
