"""A seeded SYNTHETIC patient cohort for the triage model. No real patient is in it. Pure.

Nothing here is clinical data: every number is drawn from `random.Random(seed)` (whose sequence
Python guarantees across versions and platforms), so a seed gives the same cohort everywhere and
the training data digest in the manifest can be checked by anyone who reruns it.

The generative story, per patient:

1. Age, uniform 18-95 years (recorded in the agent's records for 92 %; otherwise missing).
2. A latent severity `s0 ~ N(0, 1) + 0.35 * frailty`, frailty = (age - 55) / 20, and a hidden
   trajectory `slope ~ N(0, 0.35) + 0.25 * max(s0, 0)` per hour: sick patients tend to worsen.
   5 % have chronic hypercapnic lung disease (SpO2 target 88-92 %, scored on NEWS2 scale 2);
   40 % have an infection (fever rises with severity; without one, severity cools slightly).
3. One to four sets of vitals, 0.5-2 h apart. At time t the severity is `s0 + slope * t` and each
   true vital follows it (respiration, pulse and temperature up; SpO2 and systolic down; confusion
   and supplemental oxygen become likely past a severity of about 2), plus patient noise.
4. Device error on top: Gaussian error of each instrument (SpO2 1.5 %, pulse 3 /min, systolic
   6 mmHg, temperature 0.2 C, a counted respiration rate 1.5 /min), 2 % SpO2 motion artefacts
   (5-15 % too low) and 2 % cold-probe temperatures (1.5 C too low); values rounded as devices show
   them and clamped to what `wire.news2` accepts.
5. Missing values, independently per set: respiration rate 20 %, SpO2 8 %, systolic 10 %, pulse
   5 %, temperature 10 %, on-oxygen 15 %, consciousness 12 %.
6. The outcome, deterioration within 24 h (the label): Bernoulli with
   `logit = -4 + 1.5 * s_last + 2 * slope + 0.4 * frailty` (the prevalence is in the model card).

The model sees only what the hub would see: the noisy, partly missing vitals and the age.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from wire.news2 import Consciousness, Vitals
from wire.triage_features import FeatureRow, TimedVitals, extract

if TYPE_CHECKING:
    from collections.abc import Sequence

GENERATOR = "cloud.models.cohort/1"
"""Name and version of the generative story above; bump when it changes."""
TRAIN_SEED = 20261128
HELD_OUT_SEED = 20261129
"""The held-out evaluation cohort: a different seed, so different patients."""

_START = datetime(2026, 1, 1, tzinfo=UTC)
_MISSING = {
    "respiration_rate": 0.20,
    "spo2": 0.08,
    "systolic": 0.10,
    "pulse": 0.05,
    "temperature": 0.10,
    "on_oxygen": 0.15,
    "consciousness": 0.12,
}


@dataclass(frozen=True, slots=True)
class Patient:
    """One synthetic patient: what the hub sees (series, age) and the label (outcome)."""

    series: tuple[TimedVitals, ...]
    age_years: float | None
    outcome: bool
    """Deteriorated within 24 h of the last set of vitals."""


def generate(n: int, *, seed: int) -> list[Patient]:
    """`n` synthetic patients, the same for the same seed on every platform."""
    rng = random.Random(seed)  # noqa: S311 - seeded, reproducible synthetic data, no secrets
    return [_patient(rng, i) for i in range(n)]


def features(patients: Sequence[Patient]) -> list[FeatureRow]:
    """The feature rows (`wire.triage_features.extract`) of `patients`, in order."""
    return [extract(p.series, age_years=p.age_years) for p in patients]


def digest(rows: Sequence[Sequence[float]], labels: Sequence[bool]) -> str:
    """`sha256:` over the rows and labels as little-endian float64: the training data digest."""
    h = hashlib.sha256()
    for row, label in zip(rows, labels, strict=True):
        h.update(struct.pack(f"<{len(row)}d", *row))
        h.update(b"\x01" if label else b"\x00")
    return "sha256:" + h.hexdigest()


def _patient(rng: random.Random, index: int) -> Patient:
    age = rng.uniform(18, 95)
    frailty = (age - 55) / 20
    s0 = rng.gauss(0, 1) + 0.35 * frailty
    slope = rng.gauss(0, 0.35) + 0.25 * max(s0, 0)
    copd = rng.random() < 0.05  # noqa: PLR2004 - the story's prevalence
    infection = rng.random() < 0.4  # noqa: PLR2004 - the story's prevalence
    start = _START + timedelta(hours=index)
    t = 0.0
    series = []
    for k in range(rng.randint(1, 4)):
        if k:
            t += rng.uniform(0.5, 2.0)
        severity = s0 + slope * t
        series.append(
            TimedVitals(
                start + timedelta(hours=t),
                _vitals(rng, severity, copd=copd, infection=infection),
            )
        )
    s_last = s0 + slope * t
    logit = -4 + 1.5 * s_last + 2 * slope + 0.4 * frailty
    outcome = rng.random() < _sigmoid(logit)
    age_years = round(age) if rng.random() >= 0.08 else None  # noqa: PLR2004 - recorded 92 %
    return Patient(tuple(series), age_years, outcome)


def _vitals(rng: random.Random, s: float, *, copd: bool, infection: bool) -> Vitals:
    up = max(s, 0.0)
    rr = 15 + 3.2 * max(s, -0.8) + rng.gauss(0, 1.5)
    spo2 = (91 if copd else 97) - 2.2 * up**1.2 + rng.gauss(0, 1)
    sbp = 128 - 10 * up + rng.gauss(0, 14)
    hr = 76 + 11 * s + rng.gauss(0, 8)
    temp = 36.9 + (0.7 * up + 0.4 if infection else -0.1 * up) + rng.gauss(0, 0.35)
    not_alert = rng.random() < _sigmoid(2.5 * (s - 2.3))
    on_oxygen = rng.random() < _sigmoid(2.5 * (s - (1.0 if copd else 2.0)))
    # Device error, artefacts and display rounding.
    spo2 += rng.gauss(0, 1.5) - (rng.uniform(5, 15) if rng.random() < 0.02 else 0)  # noqa: PLR2004
    hr += rng.gauss(0, 3)
    sbp += rng.gauss(0, 6)
    temp += rng.gauss(0, 0.2) - (1.5 if rng.random() < 0.02 else 0)  # noqa: PLR2004
    rr += rng.gauss(0, 1.5)
    present = {name: rng.random() >= p for name, p in _MISSING.items()}
    return Vitals(
        respiration_rate=_clamp(round(rr), 4, 60) if present["respiration_rate"] else None,
        spo2=_clamp(round(spo2), 60, 100) if present["spo2"] else None,
        spo2_scale=2 if copd else 1,
        # Scale 2 is only scored when the oxygen observation is there (wire.news2 refuses it).
        on_oxygen=on_oxygen if present["on_oxygen"] or copd else None,
        systolic=_clamp(round(sbp), 50, 250) if present["systolic"] else None,
        pulse=_clamp(round(hr), 25, 220) if present["pulse"] else None,
        consciousness=(
            (Consciousness.CONFUSION if not_alert else Consciousness.ALERT)
            if present["consciousness"]
            else None
        ),
        temperature=_clamp(round(temp, 1), 30.0, 43.0) if present["temperature"] else None,
    )


def _clamp(value: float, low: float, high: float) -> float:
    return float(min(high, max(low, value)))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))
