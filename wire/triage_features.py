"""The triage model's input: one feature row from a patient's recent vitals. Pure, no numpy.

The hub (int8 model at the edge) and the cloud (training, evaluation, the full-precision model)
call the same `extract` and `normalise`, so a row means the same thing on both sides.

Input: the patient's vitals over a recent window (`TimedVitals`, any order: they are sorted by
time, ties broken by content, so the same set gives the same row) and the age when known.

Row (`FEATURE_NAMES`, version `FEATURE_VERSION`), all in clinical units before normalisation:

- the latest value of each vital (rates, SpO2 and pressure as measured, temperature in degrees C);
- on oxygen, not alert (ACVPU other than A) and SpO2 scale 2 as 0/1;
- the age in years;
- the trend of each measured vital: latest minus earliest value in the window (0 with one value);
- the NEWS2 aggregate of the latest vitals (`wire.news2.score`; a lower bound when incomplete);
- one 0/1 "missing" indicator per input that can be absent.

Missing values are never guessed silently: a missing vital takes its `REFERENCE` value (a normal,
mid-chart value that scores 0 in NEWS2) and its indicator is 1, so the model sees that it was not
measured; a missing on-oxygen or consciousness observation counts as 0 (air, alert) with its
indicator set; a missing age takes 50 years with its indicator set. A vital with no value in the
window has trend 0.

Normalisation (`normalise`) is outside the model graph, on purpose: an int8 model quantises its
whole input tensor with one scale, so raw units (systolic up to 300 mmHg next to 0/1 flags) would
leave about 1.2 units per step, which is a whole degree C. Standardised and clipped to
[-CLIP, CLIP] the step is about 0.03 standard deviations: finer than the chart's resolution for
every vital (docs/models/triage-v1.md lists the figure for each). The means and standard deviations
are fixed at training time and shipped in the model's manifest.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wire.items import RiskBand
from wire.news2 import Consciousness, News2, Vitals, score

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

FEATURE_VERSION = 1
CLIP = 4.0
"""Normalised features are clipped to [-CLIP, CLIP] standard deviations."""

MEASURED = ("respiration_rate", "spo2", "systolic", "pulse", "temperature")
"""Vitals with a numeric value and a trend, in row order."""

REFERENCE: dict[str, float] = {
    "respiration_rate": 16.0,
    "spo2": 97.0,
    "systolic": 125.0,
    "pulse": 75.0,
    "temperature": 36.9,
    "age_years": 50.0,
}
"""The value a missing input takes (its indicator says it was missing); NEWS2 scores each 0."""

FEATURE_NAMES: tuple[str, ...] = (
    *MEASURED,
    "on_oxygen",
    "not_alert",
    "spo2_scale2",
    "age_years",
    *(f"trend_{name}" for name in MEASURED),
    "news2_score",
    *(f"missing_{name}" for name in MEASURED),
    "missing_on_oxygen",
    "missing_consciousness",
    "missing_age",
)
N_FEATURES = len(FEATURE_NAMES)
_ROW = struct.Struct(f"<{N_FEATURES}d")
HASH_TAG = b"tecsa-triage-features/%d\n" % FEATURE_VERSION

FeatureRow = tuple[float, ...]


class FeatureSpecMismatch(ValueError):
    """A normalisation spec that does not fit this feature version (wrong length or zero spread)."""


@dataclass(frozen=True, slots=True)
class TimedVitals:
    """Vitals measured (or observed) at one moment; None fields were not measured then."""

    at: datetime
    vitals: Vitals


@dataclass(frozen=True, slots=True)
class Normalisation:
    """Per-feature mean and standard deviation, fixed at training time (the manifest's copy)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != N_FEATURES or len(self.std) != N_FEATURES:
            raise FeatureSpecMismatch(
                f"normalisation has {len(self.mean)}/{len(self.std)} values, expected {N_FEATURES}"
            )
        if any(not s > 0 for s in self.std):
            raise FeatureSpecMismatch("every standard deviation must be positive")


def latest_vitals(series: Iterable[TimedVitals]) -> Vitals:
    """The latest value of each vital and observation in `series` (any order): what NEWS2 scores."""
    return _latest(_ordered(series))


def extract(series: Iterable[TimedVitals], *, age_years: float | None) -> FeatureRow:
    """The feature row (`FEATURE_NAMES` order, clinical units) of a patient's recent vitals.

    Raises `wire.news2.InvalidVital` for an impossible value, exactly as NEWS2 does.
    """
    return extract_with_news2(series, age_years=age_years)[0]


def extract_with_news2(
    series: Iterable[TimedVitals], *, age_years: float | None
) -> tuple[FeatureRow, News2]:
    """The feature row and the NEWS2 result of the latest vitals, computed once for both."""
    ordered = _ordered(series)
    current = _latest(ordered)
    news2 = score(current)
    values: list[float] = []
    missing: list[float] = []
    trends: list[float] = []
    for name in MEASURED:
        value = getattr(current, name)
        values.append(REFERENCE[name] if value is None else float(value))
        missing.append(1.0 if value is None else 0.0)
        seen = [float(v) for e in ordered if (v := getattr(e.vitals, name)) is not None]
        trends.append(seen[-1] - seen[0] if len(seen) > 1 else 0.0)
    on_oxygen = current.on_oxygen
    consciousness = current.consciousness
    row = (
        *values,
        1.0 if on_oxygen else 0.0,
        0.0 if consciousness in {None, Consciousness.ALERT} else 1.0,
        1.0 if current.spo2_scale == 2 else 0.0,  # noqa: PLR2004 - SpO2 scale 2
        REFERENCE["age_years"] if age_years is None else float(age_years),
        *trends,
        float(news2.score),
        *missing,
        1.0 if on_oxygen is None else 0.0,
        1.0 if consciousness is None else 0.0,
        1.0 if age_years is None else 0.0,
    )
    return row, news2


def normalise(row: Sequence[float], spec: Normalisation) -> FeatureRow:
    """The row standardised by `spec` and clipped to [-CLIP, CLIP]: the model's actual input."""
    if len(row) != N_FEATURES:
        raise FeatureSpecMismatch(f"a feature row has {N_FEATURES} values, got {len(row)}")
    return tuple(
        min(CLIP, max(-CLIP, (x - m) / s)) for x, m, s in zip(row, spec.mean, spec.std, strict=True)
    )


def input_hash(row: Sequence[float]) -> str:
    """`sha256:` content hash of the canonical feature input: `TriageResult.input_hash`.

    The canonical input is the ASCII tag `HASH_TAG` followed by the row's values as IEEE-754
    float64, little-endian, in `FEATURE_NAMES` order: exact, cheap, and easy to recompute in any
    language (RFC 8785 JSON of the same row costs ten times as much per triage).
    """
    if len(row) != N_FEATURES:
        raise FeatureSpecMismatch(f"a feature row has {N_FEATURES} values, got {len(row)}")
    packed = _ROW.pack(*(float(x) for x in row))
    return "sha256:" + hashlib.sha256(HASH_TAG + packed).hexdigest()


BAND_ORDER = (RiskBand.LOW, RiskBand.LOW_MEDIUM, RiskBand.MEDIUM, RiskBand.HIGH)


def higher_band(a: RiskBand, b: RiskBand) -> RiskBand:
    """The more urgent of two bands."""
    return a if BAND_ORDER.index(a) >= BAND_ORDER.index(b) else b


def band_of_probability(probability: float, thresholds: Mapping[str, float]) -> RiskBand:
    """The most urgent band whose lowest probability (the manifest's `band_thresholds`) is reached.

    `thresholds` maps band names to the lowest probability of that band, e.g. {"low": 0,
    "low_medium": 0.25, "medium": 0.4, "high": 0.6}; below every threshold the band is low.
    """
    reached = RiskBand.LOW
    for band in BAND_ORDER:
        limit = thresholds.get(band.value)
        if limit is not None and probability >= limit:
            reached = band
    return reached


def _ordered(series: Iterable[TimedVitals]) -> list[TimedVitals]:
    ordered = sorted(series, key=lambda e: e.at)
    if any(a.at == b.at for a, b in itertools.pairwise(ordered)):  # ties: order by content
        ordered.sort(key=lambda e: (e.at, repr(e.vitals)))
    return ordered


def _latest(ordered: Sequence[TimedVitals]) -> Vitals:
    rr = spo2 = systolic = pulse = temperature = None
    on_oxygen: bool | None = None
    consciousness: Consciousness | None = None
    for entry in ordered:
        v = entry.vitals
        rr = v.respiration_rate if v.respiration_rate is not None else rr
        spo2 = v.spo2 if v.spo2 is not None else spo2
        systolic = v.systolic if v.systolic is not None else systolic
        pulse = v.pulse if v.pulse is not None else pulse
        temperature = v.temperature if v.temperature is not None else temperature
        on_oxygen = v.on_oxygen if v.on_oxygen is not None else on_oxygen
        consciousness = v.consciousness if v.consciousness is not None else consciousness
    return Vitals(
        respiration_rate=rr,
        spo2=spo2,
        spo2_scale=ordered[-1].vitals.spo2_scale if ordered else 1,
        on_oxygen=on_oxygen,
        systolic=systolic,
        pulse=pulse,
        consciousness=consciousness,
        temperature=temperature,
    )
