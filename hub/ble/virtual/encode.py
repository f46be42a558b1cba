"""Pure encoders for the health characteristics the virtual devices send (little-endian throughout).

Layouts follow /work/shared/ble/vectors.md, which cites the GATT Specification Supplement (GSS) and
IEEE 11073-20601. Every function returns the exact ATT value bytes and raises ``ValueError`` for
a value the format cannot carry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import struct
from decimal import ROUND_HALF_UP, Decimal

# -- IEEE 11073-20601 numbers (vectors.md section 1) ------------------------------------------


class Special(enum.Enum):
    """IEEE 11073 special values; each is a whole word with exponent 0."""

    NAN = "nan"
    NRES = "nres"
    POSITIVE_INFINITY = "+inf"
    NEGATIVE_INFINITY = "-inf"
    RESERVED = "reserved"


_SFLOAT_SPECIAL = {
    Special.NAN: 0x07FF,
    Special.NRES: 0x0800,
    Special.POSITIVE_INFINITY: 0x07FE,
    Special.NEGATIVE_INFINITY: 0x0802,
    Special.RESERVED: 0x0801,
}
_FLOAT_SPECIAL = {
    Special.NAN: 0x007FFFFF,
    Special.NRES: 0x00800000,
    Special.POSITIVE_INFINITY: 0x007FFFFE,
    Special.NEGATIVE_INFINITY: 0x00800002,
    Special.RESERVED: 0x00800001,
}


@dataclasses.dataclass(frozen=True)
class _Format:
    mantissa_bits: int
    exponent_bits: int
    special: dict[Special, int]

    # The top mantissa codes (+/-(2^(n-1) - 2 .. 2^(n-1))) are the special values, so the largest
    # finite mantissa is 2^(n-1) - 3 (IEEE 11073-20601 F.8).
    @property
    def max_mantissa(self) -> int:
        return (1 << (self.mantissa_bits - 1)) - 3

    @property
    def exponent_range(self) -> range:
        half = 1 << (self.exponent_bits - 1)
        return range(-half, half)


_SFLOAT = _Format(12, 4, _SFLOAT_SPECIAL)
_FLOAT = _Format(24, 8, _FLOAT_SPECIAL)


def sfloat(value: float | Special, exponent: int | None = None) -> bytes:
    """Encode an SFLOAT with ``exponent``, else with the smallest exponent that fits (half up)."""
    return _medfloat(_SFLOAT, value, exponent).to_bytes(2, "little")


def medfloat32(value: float | Special, exponent: int | None = None) -> bytes:
    """Encode a FLOAT (32-bit medfloat): with ``exponent`` as given, else the smallest that fits."""
    return _medfloat(_FLOAT, value, exponent).to_bytes(4, "little")


def _medfloat(fmt: _Format, value: float | Special, exponent: int | None) -> int:
    if isinstance(value, Special):
        return fmt.special[value]
    if math.isnan(value):
        return fmt.special[Special.NAN]
    if math.isinf(value):
        return fmt.special[Special.POSITIVE_INFINITY if value > 0 else Special.NEGATIVE_INFINITY]
    exponents = fmt.exponent_range if exponent is None else (exponent,)
    if exponent is not None and exponent not in fmt.exponent_range:
        raise ValueError(f"exponent {exponent} is outside {fmt.exponent_range}")
    for candidate in exponents:
        mantissa = int(
            (Decimal(repr(value)).scaleb(-candidate)).to_integral_value(rounding=ROUND_HALF_UP)
        )
        if abs(mantissa) <= fmt.max_mantissa:
            mantissa_mask = (1 << fmt.mantissa_bits) - 1
            exponent_mask = (1 << fmt.exponent_bits) - 1
            return ((candidate & exponent_mask) << fmt.mantissa_bits) | (mantissa & mantissa_mask)
    raise ValueError(f"{value} does not fit an IEEE 11073 {fmt.mantissa_bits}-bit mantissa")


# -- Date Time 0x2A08 (vectors.md section 1) ---------------------------------------------------


def date_time(value: dt.datetime) -> bytes:
    """Encode a wall-clock time as the 7-byte Date Time (no time zone)."""
    return date_time_fields(
        value.year,
        value.month,
        value.day,
        hours=value.hour,
        minutes=value.minute,
        seconds=value.second,
    )


def date_time_fields(
    year: int, month: int, day: int, *, hours: int = 0, minutes: int = 0, seconds: int = 0
) -> bytes:
    """Encode Date Time fields as given; 0 means unknown for year, month and day (GSS 3.70)."""
    if not (year == 0 or 1582 <= year <= 9999):  # noqa: PLR2004 - GSS range of the year field
        raise ValueError(f"year {year} is neither 0 (unknown) nor 1582..9999")
    if not (0 <= month <= 12 and 0 <= day <= 31):  # noqa: PLR2004 - calendar bounds
        raise ValueError("month or day out of range")
    if not (0 <= hours <= 23 and 0 <= minutes <= 59 and 0 <= seconds <= 59):  # noqa: PLR2004
        raise ValueError("time of day out of range")
    return struct.pack("<HBBBBB", year, month, day, hours, minutes, seconds)


# -- Blood pressure 0x2A35 / 0x2A36 (vectors.md section 2) -------------------------------------

_BP_KPA = 0x01
_BP_TIMESTAMP = 0x02
_BP_PULSE = 0x04
_BP_USER = 0x08
_BP_STATUS = 0x10


def blood_pressure_measurement(
    systolic: float | Special,
    diastolic: float | Special,
    mean_arterial: float | Special,
    *,
    kpa: bool = False,
    timestamp: bytes | dt.datetime | None = None,
    pulse: float | Special | None = None,
    user_id: int | None = None,
    status: int | None = None,
    exponent: int | None = 0,
) -> bytes:
    """Encode a Blood Pressure Measurement (also the Intermediate Cuff Pressure layout)."""
    flags = _BP_KPA if kpa else 0
    body = (
        sfloat(systolic, exponent) + sfloat(diastolic, exponent) + sfloat(mean_arterial, exponent)
    )
    if timestamp is not None:
        flags |= _BP_TIMESTAMP
        body += _timestamp(timestamp)
    if pulse is not None:
        flags |= _BP_PULSE
        body += sfloat(pulse, exponent)
    if user_id is not None:
        flags |= _BP_USER
        body += _u8(user_id)
    if status is not None:
        flags |= _BP_STATUS
        body += _u16(status)
    return bytes([flags]) + body


def intermediate_cuff_pressure(
    cuff_pressure: float,
    *,
    kpa: bool = False,
    unused: float | Special = Special.NAN,
    timestamp: bytes | dt.datetime | None = None,
    pulse: float | None = None,
    user_id: int | None = None,
    status: int | None = None,
    exponent: int | None = 0,
) -> bytes:
    """Encode an Intermediate Cuff Pressure; diastolic and MAP carry ``unused`` (NaN or 0)."""
    return blood_pressure_measurement(
        cuff_pressure,
        unused,
        unused,
        kpa=kpa,
        timestamp=timestamp,
        pulse=pulse,
        user_id=user_id,
        status=status,
        exponent=exponent,
    )


# -- Temperature 0x2A1C (vectors.md section 3) -------------------------------------------------


def temperature_measurement(
    temperature: float | Special,
    *,
    fahrenheit: bool = False,
    timestamp: bytes | dt.datetime | None = None,
    temperature_type: int | None = None,
    exponent: int | None = -2,
) -> bytes:
    """Encode a Temperature Measurement (FLOAT value, optional time stamp and type)."""
    flags = 0x01 if fahrenheit else 0
    body = medfloat32(temperature, exponent)
    if timestamp is not None:
        flags |= 0x02
        body += _timestamp(timestamp)
    if temperature_type is not None:
        flags |= 0x04
        body += _u8(temperature_type)
    return bytes([flags]) + body


# -- Heart rate 0x2A37 (vectors.md section 4) --------------------------------------------------

SENSOR_CONTACT_NOT_DETECTED = 2
SENSOR_CONTACT_DETECTED = 3


def heart_rate_measurement(
    bpm: int,
    *,
    sensor_contact: int | None = None,
    energy_expended: int | None = None,
    rr_intervals: tuple[int, ...] = (),
    wide: bool = False,
) -> bytes:
    """Encode a Heart Rate Measurement; RR-intervals are raw 1/1024 s units."""
    flags = 0
    if wide or bpm > 0xFF:  # noqa: PLR2004 - the u8 format's limit
        flags |= 0x01
        body = _u16(bpm)
    else:
        body = _u8(bpm)
    if sensor_contact is not None:
        flags |= (sensor_contact & 0x03) << 1
    if energy_expended is not None:
        flags |= 0x08
        body += _u16(energy_expended)
    if rr_intervals:
        flags |= 0x10
        body += b"".join(_u16(rr) for rr in rr_intervals)
    return bytes([flags]) + body


# -- Pulse oximeter 0x2A5E / 0x2A5F / 0x2A60 (vectors.md section 5) ---------------------------


def plx_spot_check(
    spo2: float | Special,
    pulse_rate: float | Special,
    *,
    timestamp: bytes | dt.datetime | None = None,
    measurement_status: int | None = None,
    device_sensor_status: int | None = None,
    pulse_amplitude_index: float | None = None,
    clock_not_set: bool = False,
    exponent: int | None = 0,
    pai_exponent: int | None = -1,
) -> bytes:
    """Encode a PLX Spot-Check Measurement."""
    flags = 0x10 if clock_not_set else 0
    body = sfloat(spo2, exponent) + sfloat(pulse_rate, exponent)
    if timestamp is not None:
        flags |= 0x01
        body += _timestamp(timestamp)
    if measurement_status is not None:
        flags |= 0x02
        body += _u16(measurement_status)
    if device_sensor_status is not None:
        flags |= 0x04
        body += _u24(device_sensor_status)
    if pulse_amplitude_index is not None:
        flags |= 0x08
        body += sfloat(pulse_amplitude_index, pai_exponent)
    return bytes([flags]) + body


def plx_continuous(
    spo2: float | Special,
    pulse_rate: float | Special,
    *,
    fast: tuple[float, float] | None = None,
    slow: tuple[float, float] | None = None,
    measurement_status: int | None = None,
    device_sensor_status: int | None = None,
    pulse_amplitude_index: float | None = None,
    exponent: int | None = 0,
    pai_exponent: int | None = -1,
) -> bytes:
    """Encode a PLX Continuous Measurement."""
    flags = 0
    body = sfloat(spo2, exponent) + sfloat(pulse_rate, exponent)
    if fast is not None:
        flags |= 0x01
        body += sfloat(fast[0], exponent) + sfloat(fast[1], exponent)
    if slow is not None:
        flags |= 0x02
        body += sfloat(slow[0], exponent) + sfloat(slow[1], exponent)
    if measurement_status is not None:
        flags |= 0x04
        body += _u16(measurement_status)
    if device_sensor_status is not None:
        flags |= 0x08
        body += _u24(device_sensor_status)
    if pulse_amplitude_index is not None:
        flags |= 0x10
        body += sfloat(pulse_amplitude_index, pai_exponent)
    return bytes([flags]) + body


def plx_features(
    features: int,
    *,
    measurement_status_support: int | None = None,
    device_sensor_status_support: int | None = None,
) -> bytes:
    """Encode PLX Features; the optional fields follow when features bits 0 and 1 say so."""
    body = _u16(features)
    if features & 0x01:
        body += _u16(measurement_status_support or 0)
    if features & 0x02:
        body += _u24(device_sensor_status_support or 0)
    return body


# -- Glucose 0x2A18 / 0x2A34 and RACP 0x2A52 (vectors.md section 6) ----------------------------

GLUCOSE_UNIT_KG_PER_L = 0
GLUCOSE_UNIT_MOL_PER_L = 1


def glucose_measurement(
    sequence: int,
    base_time: bytes | dt.datetime,
    *,
    time_offset: int | None = None,
    concentration: float | Special | None = None,
    unit: int = GLUCOSE_UNIT_KG_PER_L,
    sample_type: int = 1,
    sample_location: int = 1,
    sensor_status: int | None = None,
    context_follows: bool = False,
    exponent: int | None = None,
) -> bytes:
    """Encode a Glucose Measurement; type is the low nibble, location the high nibble."""
    flags = 0
    body = _u16(sequence) + _timestamp(base_time)
    if time_offset is not None:
        flags |= 0x01
        body += struct.pack("<h", time_offset)
    if concentration is not None:
        flags |= 0x02
        if unit == GLUCOSE_UNIT_MOL_PER_L:
            flags |= 0x04
        body += sfloat(concentration, exponent) + _u8(
            (sample_location & 0x0F) << 4 | (sample_type & 0x0F)
        )
    if sensor_status is not None:
        flags |= 0x08
        body += _u16(sensor_status)
    if context_follows:
        flags |= 0x10
    return bytes([flags]) + body


def glucose_context(
    sequence: int,
    *,
    carbohydrate: tuple[int, float] | None = None,
    meal: int | None = None,
    hba1c: float | None = None,
) -> bytes:
    """Encode a Glucose Measurement Context (GLS 3.107): carbohydrate (id, kg), meal, HbA1c (%)."""
    flags = 0
    body = _u16(sequence)
    if carbohydrate is not None:
        flags |= 0x01
        body += _u8(carbohydrate[0]) + sfloat(carbohydrate[1])
    if meal is not None:
        flags |= 0x02
        body += _u8(meal)
    if hba1c is not None:
        flags |= 0x40
        body += sfloat(hba1c)
    return bytes([flags]) + body


RACP_REPORT_RECORDS = 0x01
RACP_DELETE_RECORDS = 0x02
RACP_ABORT = 0x03
RACP_REPORT_NUMBER = 0x04
RACP_NUMBER_RESPONSE = 0x05
RACP_RESPONSE_CODE = 0x06


class RacpResponse(enum.IntEnum):
    """RACP response codes (vectors.md section 6, RACP table)."""

    SUCCESS = 0x01
    OP_CODE_NOT_SUPPORTED = 0x02
    INVALID_OPERATOR = 0x03
    OPERATOR_NOT_SUPPORTED = 0x04
    INVALID_OPERAND = 0x05
    NO_RECORDS_FOUND = 0x06
    ABORT_UNSUCCESSFUL = 0x07
    PROCEDURE_NOT_COMPLETED = 0x08
    OPERAND_NOT_SUPPORTED = 0x09


def racp_response(request_op_code: int, code: RacpResponse) -> bytes:
    """Encode ``06 00 <request op code> <response code>``."""
    return bytes([RACP_RESPONSE_CODE, 0x00, request_op_code & 0xFF, code])


def racp_number_of_records(count: int) -> bytes:
    """Encode ``05 00 <count u16>``."""
    return bytes([RACP_NUMBER_RESPONSE, 0x00]) + _u16(count)


# -- Weight 0x2A9D / 0x2A9E (vectors.md section 7) ---------------------------------------------

WEIGHT_UNSUCCESSFUL = 0xFFFF
_KG_RESOLUTION = Decimal("0.005")
_LB_RESOLUTION = Decimal("0.01")


def weight_measurement(
    weight: float | None,
    *,
    imperial: bool = False,
    timestamp: bytes | dt.datetime | None = None,
    user_id: int | None = None,
    bmi_and_height: tuple[float, float] | None = None,
) -> bytes:
    """Encode a Weight Measurement in 0.005 kg (or 0.01 lb) units; ``None`` is "unsuccessful"."""
    flags = 0x01 if imperial else 0
    if weight is None:
        raw = WEIGHT_UNSUCCESSFUL
        bmi_and_height = None  # GSS: only time stamp and user id may accompany 0xFFFF
    else:
        raw = _scaled(weight, _LB_RESOLUTION if imperial else _KG_RESOLUTION)
    body = _u16(raw)
    if timestamp is not None:
        flags |= 0x02
        body += _timestamp(timestamp)
    if user_id is not None:
        flags |= 0x04
        body += _u8(user_id)
    if bmi_and_height is not None:
        flags |= 0x08
        height_unit = Decimal("0.1") if imperial else Decimal("0.001")
        body += _u16(_scaled(bmi_and_height[0], Decimal("0.1")))
        body += _u16(_scaled(bmi_and_height[1], height_unit))
    return bytes([flags]) + body


def weight_scale_feature(features: int) -> bytes:
    """Encode the Weight Scale Feature (u32)."""
    return struct.pack("<I", features)


# -- Current Time 0x2A2B (vectors.md section 8) ------------------------------------------------

ADJUST_MANUAL = 0x01
ADJUST_EXTERNAL_REFERENCE = 0x02


def current_time(value: dt.datetime, *, adjust_reason: int = 0) -> bytes:
    """Encode Current Time: Date Time, day of week (1 = Monday), fractions256, adjust reason."""
    fractions256 = value.microsecond * 256 // 1_000_000
    return date_time(value) + bytes([value.isoweekday(), fractions256, adjust_reason])


# -- helpers -----------------------------------------------------------------------------------


def _timestamp(value: bytes | dt.datetime) -> bytes:
    if isinstance(value, dt.datetime):
        return date_time(value)
    if len(value) != 7:  # noqa: PLR2004 - Date Time is 7 bytes
        raise ValueError("a raw Date Time is 7 bytes")
    return value


def _scaled(value: float, resolution: Decimal) -> int:
    raw = int((Decimal(repr(value)) / resolution).to_integral_value(rounding=ROUND_HALF_UP))
    if not 0 <= raw < WEIGHT_UNSUCCESSFUL:
        raise ValueError(f"{value} does not fit a u16 of {resolution} units")
    return raw


def _u8(value: int) -> bytes:
    return struct.pack("<B", value)


def _u16(value: int) -> bytes:
    return struct.pack("<H", value)


def _u24(value: int) -> bytes:
    if not 0 <= value < 1 << 24:
        raise ValueError("a u24 is 0..16777215")
    return value.to_bytes(3, "little")
