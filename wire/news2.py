"""NEWS2, the Royal College of Physicians' National Early Warning Score 2 (2017), exactly. Pure.

It lives in `wire` because the hub (triage at the edge) and the cloud (training and evaluating the
triage model, `cloud.models`) must score exactly alike, and neither may import the other.

Seven parameters each score 0-3 (the chart's bands, below); the aggregate and the presence of any
single score of 3 give the clinical risk band:

    aggregate >= 7                      high        (emergency response)
    aggregate 5-6                       medium      (urgent response)
    any single parameter scoring 3      low_medium  (urgent ward-based response)
    otherwise (aggregate 0-4)           low

SpO2 has two scales. Scale 2 is for patients with hypercapnic respiratory failure whose target
saturation is 88-92 % and is used only when a clinician prescribed it; on scale 2, saturations of
93 % or more score 0 on air but 1-3 on supplemental oxygen (the "air/oxygen rule").

A missing parameter never counts as normal: the result is marked incomplete, lists what is
missing, and its band is a lower bound. Rates, SpO2 and pressure are scored as whole numbers
(rounded half up) and temperature to one decimal, as the chart is written. Values outside what a
living patient can show are refused with `InvalidVital` rather than scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from wire.items import RiskBand


class Consciousness(StrEnum):
    """ACVPU: Alert, new Confusion, responds to Voice, to Pain, Unresponsive."""

    ALERT = "A"
    CONFUSION = "C"
    VOICE = "V"
    PAIN = "P"
    UNRESPONSIVE = "U"


class InvalidVital(ValueError):
    """A vital sign outside what a living patient can show, or a contradictory input."""


@dataclass(frozen=True, slots=True)
class Vitals:
    """The inputs; None means not measured."""

    respiration_rate: float | None = None
    spo2: float | None = None
    spo2_scale: int = 1
    on_oxygen: bool | None = None
    systolic: float | None = None
    pulse: float | None = None
    consciousness: Consciousness | None = None
    temperature: float | None = None
    """Degrees Celsius."""


@dataclass(frozen=True, slots=True)
class News2:
    """The score, its parts and the band."""

    score: int
    band: RiskBand
    subscores: dict[str, int]
    complete: bool
    missing: tuple[str, ...] = field(default=())


# Plausibility limits (refuse rather than score); chosen wide: a real extreme must still score 3.
_LIMITS = {
    "respiration_rate": (0, 80),
    "spo2": (30, 100),
    "systolic": (30, 300),
    "pulse": (15, 300),
    "temperature": (25.0, 45.0),
}
HIGH_FROM, MEDIUM_FROM, RED_SCORE = 7, 5, 3
"""Aggregate from which the band is high, medium; the single-parameter score that is "red"."""
PARAMETERS = (
    "respiration_rate",
    "spo2",
    "air_or_oxygen",
    "systolic",
    "pulse",
    "consciousness",
    "temperature",
)


def score(vitals: Vitals) -> News2:
    """Score `vitals` by the NEWS2 chart; raise `InvalidVital` for impossible values."""
    _check(vitals)
    sub: dict[str, int] = {}
    for name in PARAMETERS:  # in chart order: the subscores' order in results
        if name == "air_or_oxygen":
            if vitals.on_oxygen is not None:
                sub[name] = 2 if vitals.on_oxygen else 0
        elif name == "consciousness":
            if vitals.consciousness is not None:
                sub[name] = 0 if vitals.consciousness is Consciousness.ALERT else 3
        elif (value := getattr(vitals, name)) is not None:
            points = subscore(name, value, spo2_scale=vitals.spo2_scale, on_oxygen=vitals.on_oxygen)
            if points is not None:
                sub[name] = points
    total = sum(sub.values())
    missing = tuple(p for p in PARAMETERS if p not in sub)
    return News2(total, band(total, sub), sub, complete=not missing, missing=missing)


def subscore(
    name: str, value: float, *, spo2_scale: int = 1, on_oxygen: bool | None = None
) -> int | None:
    """The chart's points for one measured parameter, as `score` gives them.

    `name` is one of respiration_rate, spo2, systolic, pulse, temperature. None for SpO2 on
    scale 2 when it is not known whether the patient is on oxygen (`score` refuses that case as
    a whole). Values are not checked against the plausibility limits here: `score` does that.
    """
    if name == "respiration_rate":
        return _respiration(_whole(value))
    if name == "spo2":
        if spo2_scale == 1:
            return _spo2_scale1(_whole(value))
        return None if on_oxygen is None else _spo2_scale2(_whole(value), on_oxygen=on_oxygen)
    if name == "systolic":
        return _systolic(_whole(value))
    if name == "pulse":
        return _pulse(_whole(value))
    if name == "temperature":
        return _temperature(_tenths(value))
    raise ValueError(f"{name!r} is not a measured NEWS2 parameter")


def band(total: int, subscores: dict[str, int]) -> RiskBand:
    """The clinical risk band of an aggregate and its parts (RCP NEWS2 chart 2)."""
    if total >= HIGH_FROM:
        return RiskBand.HIGH
    if total >= MEDIUM_FROM:
        return RiskBand.MEDIUM
    if any(s == RED_SCORE for s in subscores.values()):
        return RiskBand.LOW_MEDIUM
    return RiskBand.LOW


_ABOVE = 10**6

# The chart (RCP NEWS2, chart 1) as (highest value of the band, score), in increasing order.
RESPIRATION = ((8, 3), (11, 1), (20, 0), (24, 2), (_ABOVE, 3))
SPO2_SCALE1 = ((91, 3), (93, 2), (95, 1), (_ABOVE, 0))
SPO2_SCALE2_AIR = ((83, 3), (85, 2), (87, 1), (_ABOVE, 0))
SPO2_SCALE2_OXYGEN = ((83, 3), (85, 2), (87, 1), (92, 0), (94, 1), (96, 2), (_ABOVE, 3))
SYSTOLIC = ((90, 3), (100, 2), (110, 1), (219, 0), (_ABOVE, 3))
PULSE = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (_ABOVE, 3))
TEMPERATURE_TENTHS = ((350, 3), (360, 1), (380, 0), (390, 1), (_ABOVE, 2))


def _lookup(value: int, chart: tuple[tuple[int, int], ...]) -> int:
    return next(points for highest, points in chart if value <= highest)


def _respiration(rr: int) -> int:
    return _lookup(rr, RESPIRATION)


def _spo2_scale1(spo2: int) -> int:
    return _lookup(spo2, SPO2_SCALE1)


def _spo2_scale2(spo2: int, *, on_oxygen: bool) -> int:
    return _lookup(spo2, SPO2_SCALE2_OXYGEN if on_oxygen else SPO2_SCALE2_AIR)


def _systolic(sbp: int) -> int:
    return _lookup(sbp, SYSTOLIC)


def _pulse(hr: int) -> int:
    return _lookup(hr, PULSE)


def _temperature(tenths: int) -> int:
    return _lookup(tenths, TEMPERATURE_TENTHS)


def _whole(value: float) -> int:
    return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _tenths(value: float) -> int:
    return int(Decimal(str(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP) * 10)


def _check(v: Vitals) -> None:
    for name, (low, high) in _LIMITS.items():
        value = getattr(v, name)
        if value is not None and not low <= value <= high:
            raise InvalidVital(f"{name} {value} is outside {low}-{high}: check the measurement")
    if v.spo2_scale not in (1, 2):
        raise InvalidVital("the SpO2 scale is 1 or 2")
    if v.spo2 is not None and v.spo2_scale == 2 and v.on_oxygen is None:  # noqa: PLR2004 - scale 2
        raise InvalidVital("SpO2 scale 2 needs to know whether the patient is on oxygen")
