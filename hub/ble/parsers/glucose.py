"""Glucose Service: Glucose Measurement 0x2A18, Measurement Context 0x2A34, Feature 0x2A51."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from hub.ble.parsers._codec import (
    Reader,
    bit_names,
    check_input,
    check_length,
    check_reserved,
    decode_sfloat,
    read_flags,
)
from hub.ble.parsers.date_time import read_date_time, timestamp
from hub.ble.parsers.values import Measurement, Quantity, build_measurement, to_quantity

if TYPE_CHECKING:
    from hub.ble.parsers.values import ExtraValue

GLUCOSE_MEASUREMENT = "2a18"
GLUCOSE_MEASUREMENT_CONTEXT = "2a34"
GLUCOSE_FEATURE = "2a51"

# GLS 1.0, "Glucose Measurement" flags.
_OFFSET = 0x01
_CONCENTRATION = 0x02
_MOL_PER_L = 0x04
_STATUS = 0x08
_CONTEXT_FOLLOWS = 0x10
_RESERVED = 0xE0
_MIN_LEN = 10  # flags + sequence uint16 + base time 7
_TYPE_MASK = 0x0F  # the low nibble is the type, the high nibble the sample location
_LOCATION_SHIFT = 4
# mg/dL = kg/L * 100 000 and mmol/L = mol/L * 1000: exponent shifts, exact in decimal.
_KG_PER_L_TO_MG_PER_DL = 5
_MOL_PER_L_TO_MMOL_PER_L = 3

SAMPLE_TYPES = {
    1: "capillary_whole_blood",
    2: "capillary_plasma",
    3: "venous_whole_blood",
    4: "venous_plasma",
    5: "arterial_whole_blood",
    6: "arterial_plasma",
    7: "undetermined_whole_blood",
    8: "undetermined_plasma",
    9: "interstitial_fluid",
    10: "control_solution",
}
SAMPLE_LOCATIONS = {
    1: "finger",
    2: "alternate_site_test",
    3: "earlobe",
    4: "control_solution",
    15: "not_available",
}
_CONTROL_SOLUTION_TYPE = 10
_CONTROL_SOLUTION_LOCATION = 4
# Sensor Status Annunciation (uint16); bits 12-15 are reserved.
SENSOR_STATUS_BITS = {
    0: "battery_low",
    1: "sensor_malfunction",
    2: "sample_size_insufficient",
    3: "strip_insertion_error",
    4: "strip_type_incorrect",
    5: "result_too_high",
    6: "result_too_low",
    7: "temperature_too_high",
    8: "temperature_too_low",
    9: "read_interrupted",
    10: "general_device_fault",
    11: "time_fault",
}
# GLS 1.0, "Glucose Feature" (uint16); bits 11-15 are reserved.
FEATURE_BITS = {
    0: "low_battery_detection",
    1: "sensor_malfunction_detection",
    2: "sensor_sample_size",
    3: "strip_insertion_error_detection",
    4: "strip_type_error_detection",
    5: "result_high_low_detection",
    6: "temperature_high_low_detection",
    7: "read_interrupt_detection",
    8: "general_device_fault",
    9: "time_fault",
    10: "multiple_bond",
}
_FEATURE_LEN = 2

# GLS 1.0, "Glucose Measurement Context" flags.
_CTX_CARBOHYDRATE = 0x01
_CTX_MEAL = 0x02
_CTX_TESTER_HEALTH = 0x04
_CTX_EXERCISE = 0x08
_CTX_MEDICATION = 0x10
_CTX_MEDICATION_LITRES = 0x20
_CTX_HBA1C = 0x40
_CTX_EXTENDED = 0x80
_CTX_MIN_LEN = 3  # flags + sequence uint16
_EXERCISE_OVERRUN = (
    0xFFFF  # GLS 1.0, "Glucose Measurement Context": exercise duration 65535 = overrun
)
CARBOHYDRATES = {
    1: "breakfast",
    2: "lunch",
    3: "dinner",
    4: "snack",
    5: "drink",
    6: "supper",
    7: "brunch",
}
MEALS = {1: "preprandial", 2: "postprandial", 3: "fasting", 4: "casual", 5: "bedtime"}
TESTERS = {1: "self", 2: "health_care_professional", 3: "lab_test", 15: "not_available"}
HEALTH = {
    1: "minor_health_issues",
    2: "major_health_issues",
    3: "during_menses",
    4: "under_stress",
    5: "no_health_issues",
    15: "not_available",
}
MEDICATIONS = {
    1: "rapid_acting_insulin",
    2: "short_acting_insulin",
    3: "intermediate_acting_insulin",
    4: "long_acting_insulin",
    5: "pre_mixed_insulin",
}


@dataclass(frozen=True, slots=True)
class GlucoseFeature:
    """What a glucose meter says it can detect."""

    characteristic: ClassVar[str] = GLUCOSE_FEATURE
    kind: ClassVar[str] = "glucose_feature"

    supported: tuple[str, ...]


def parse_glucose(data: bytes, *, quirks: frozenset[str] = frozenset()) -> Measurement:  # noqa: ARG001 - every parser takes quirks
    """Parse a Glucose Measurement (0x2A18); device_time is the base time plus the time offset."""
    char = GLUCOSE_MEASUREMENT
    reader, flags = read_flags(
        data,
        char,
        reserved=_RESERVED,
        min_len=_MIN_LEN,
        optional=((_OFFSET, 2), (_CONCENTRATION, 3), (_STATUS, 2)),
    )
    extra: dict[str, ExtraValue] = {
        "sequence": reader.u16("sequence number"),
        "context_follows": bool(flags & _CONTEXT_FOLLOWS),
    }
    stamp = read_date_time(reader, char)
    offset = reader.s16("time offset") if flags & _OFFSET else 0
    if flags & _OFFSET:
        extra["time_offset_minutes"] = offset
    device_time, quality, time_extra = timestamp(stamp, char, offset_minutes=offset)
    extra |= time_extra
    values: dict[str, Quantity] = {}
    if flags & _CONCENTRATION:
        raw = reader.u16("glucose concentration")
        type_location = reader.u8("type and sample location")
        if flags & _MOL_PER_L:
            number = decode_sfloat(raw, _MOL_PER_L_TO_MMOL_PER_L)
            values["glucose"] = to_quantity(number, "mmol/L", quality)
        else:
            number = decode_sfloat(raw, _KG_PER_L_TO_MG_PER_DL)
            values["glucose"] = to_quantity(number, "mg/dL", quality)
        sample_type = type_location & _TYPE_MASK
        location = type_location >> _LOCATION_SHIFT
        extra["sample_type"] = SAMPLE_TYPES.get(sample_type)
        extra["sample_location"] = SAMPLE_LOCATIONS.get(location)
        if sample_type == _CONTROL_SOLUTION_TYPE or location == _CONTROL_SOLUTION_LOCATION:
            quality.add("control_solution")
    if flags & _STATUS:
        quality.update(bit_names(reader.u16("sensor status annunciation"), SENSOR_STATUS_BITS))
    reader.expect_end()
    return build_measurement(
        char, "glucose", values, device_time=device_time, flags=quality, extra=extra
    )


def parse_glucose_context(data: bytes, *, quirks: frozenset[str] = frozenset()) -> Measurement:  # noqa: ARG001 - every parser takes quirks
    """Parse a Glucose Measurement Context (0x2A34); join it to its measurement by `sequence`."""
    char = GLUCOSE_MEASUREMENT_CONTEXT
    data = check_input(data, char)
    reader = Reader(data, char)
    flags = reader.u8("flags")
    expected = (
        _CTX_MIN_LEN
        + (1 if flags & _CTX_EXTENDED else 0)
        + (3 if flags & _CTX_CARBOHYDRATE else 0)
        + (1 if flags & _CTX_MEAL else 0)
        + (1 if flags & _CTX_TESTER_HEALTH else 0)
        + (3 if flags & _CTX_EXERCISE else 0)
        + (3 if flags & _CTX_MEDICATION else 0)
        + (2 if flags & _CTX_HBA1C else 0)
    )
    check_length(data, expected, char, flags)
    extra: dict[str, ExtraValue] = {"sequence": reader.u16("sequence number")}
    quality: set[str] = set()
    values: dict[str, Quantity] = {}
    if flags & _CTX_EXTENDED:
        check_reserved(
            reader.u8("extended flags"), 0xFF, char
        )  # GLS 1.0, "Glucose Measurement Context": all bits RFU
    if flags & _CTX_CARBOHYDRATE:
        extra["carbohydrate"] = CARBOHYDRATES.get(reader.u8("carbohydrate id"))
        grams = decode_sfloat(reader.u16("carbohydrate"), 3)  # kilograms → g
        values["carbohydrate"] = to_quantity(grams, "g", quality)
    if flags & _CTX_MEAL:
        extra["meal"] = MEALS.get(reader.u8("meal"))
    if flags & _CTX_TESTER_HEALTH:
        tester_health = reader.u8("tester and health")
        extra["tester"] = TESTERS.get(tester_health & 0x0F)
        extra["health"] = HEALTH.get(tester_health >> 4)
    if flags & _CTX_EXERCISE:
        duration = reader.u16("exercise duration")
        if duration == _EXERCISE_OVERRUN:
            quality.add("exercise_duration_overrun")
        values["exercise_duration"] = Quantity(
            None if duration == _EXERCISE_OVERRUN else float(duration), "s"
        )
        values["exercise_intensity"] = Quantity(float(reader.u8("exercise intensity")), "%")
    if flags & _CTX_MEDICATION:
        extra["medication"] = MEDICATIONS.get(reader.u8("medication id"))
        raw = reader.u16("medication")
        if flags & _CTX_MEDICATION_LITRES:
            values["medication"] = to_quantity(decode_sfloat(raw, 3), "mL", quality)
        else:
            values["medication"] = to_quantity(decode_sfloat(raw, 6), "mg", quality)
    if flags & _CTX_HBA1C:
        values["hba1c"] = to_quantity(reader.sfloat("HbA1c"), "%", quality)
    reader.expect_end()
    return build_measurement(
        char, "glucose_context", values, device_time=None, flags=quality, extra=extra
    )


def parse_glucose_feature(
    data: bytes,
    *,
    quirks: frozenset[str] = frozenset(),  # noqa: ARG001 - every parser takes quirks
) -> GlucoseFeature:
    """Parse a Glucose Feature (0x2A51) value: a uint16 of supported-feature bits."""
    data = check_input(data, GLUCOSE_FEATURE)
    check_length(data, _FEATURE_LEN, GLUCOSE_FEATURE)
    return GlucoseFeature(bit_names(int.from_bytes(data, "little"), FEATURE_BITS))
