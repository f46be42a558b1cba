"""Where triage's inputs come from: reading components, and the agent's observations in records.

The hub triages a patient from BLE readings and from what the agent wrote in the patient's
records; the cloud rebuilds the very same inputs to score them again with the float model and
check the hub's `input_hash`. Both use this module (hub and cloud may not import each other), so
the two can never drift apart: which reading component is which vital and in which unit, and
which record keys are observations.

Record keys (docs/triage.md): `observations.resp_rate` (breaths/min), `observations.consciousness`
(ACVPU letter), `observations.on_oxygen` (true/false), `observations.spo2_scale` (1 or 2),
`patient.age_years`. A value of the wrong type is ignored (never guessed) and reported in `bad`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wire.news2 import Consciousness, Vitals
from wire.triage_features import TimedVitals

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime, timedelta

KPA_TO_MMHG = 7.500_615_75  # 1 kPa = 7.50062 mmHg (ISO 80000-4)

VITAL_SOURCES: dict[tuple[str, str], str] = {
    ("blood_pressure", "systolic"): "systolic",
    ("blood_pressure", "pulse"): "pulse",
    ("heart_rate", "heart_rate"): "pulse",
    ("spo2_spot_check", "spo2"): "spo2",
    ("spo2_spot_check", "pulse"): "pulse",
    ("spo2_continuous", "spo2"): "spo2",
    ("spo2_continuous", "pulse"): "pulse",
    ("body_temperature", "temperature"): "temperature",
}
"""(reading kind, component name) -> the NEWS2 vital it measures."""


def chart_value(kind: str, name: str, value: object, unit: object) -> tuple[str, float] | None:
    """(vital, value in the unit NEWS2 is charted in) of one reading component, or None.

    None when the component is not a vital, its value is not a number, or its unit cannot be
    converted.
    """
    vital = VITAL_SOURCES.get((kind, name))
    number = _number(value)
    if vital is None or number is None:
        return None
    conversions = {
        ("systolic", "mm[Hg]"): number,
        ("systolic", "kPa"): number * KPA_TO_MMHG,
        ("pulse", "/min"): number,
        ("spo2", "%"): number,
        ("temperature", "Cel"): number,
        ("temperature", "[degF]"): (number - 32) * 5 / 9,
    }
    converted = conversions.get((vital, str(unit)))
    return None if converted is None else (vital, converted)


@dataclass(frozen=True, slots=True)
class RecordObservations:
    """What the records of one patient say at one moment."""

    series: tuple[TimedVitals, ...]
    """One entry per record within the window that observed something, at its `updated_at`."""
    spo2_scale: int
    """The latest `observations.spo2_scale` within the window; 1 when none says."""
    age_years: float | None
    """The latest `patient.age_years` up to the moment (window or not)."""
    bad: tuple[tuple[int, str], ...]
    """(index of the record in the input, key) of every value of the wrong type, ignored."""


def observations(
    records: Iterable[tuple[datetime, Mapping[str, Any]]], *, at: datetime, window: timedelta
) -> RecordObservations:
    """The observations in `records` ((updated_at, payload) pairs) as of `at`.

    Records updated after `at` are ignored; `observations.*` count within `(at - window, at]`;
    the features take the latest value of each vital from the series.
    """
    series: list[TimedVitals] = []
    bad: list[tuple[int, str]] = []
    scale, scale_at = 1, None
    age: float | None = None
    age_at: datetime | None = None
    for index, (when, payload) in enumerate(records):
        if when > at:
            continue
        patient = payload.get("patient")
        if isinstance(patient, dict) and "age_years" in patient:
            value = _number(patient["age_years"])
            if value is None or value < 0:
                bad.append((index, "patient.age_years"))
            elif age_at is None or when > age_at:
                age, age_at = value, when
        obs = payload.get("observations")
        if not isinstance(obs, dict) or not at - window < when:
            continue
        vitals, record_scale, wrong = _parse(obs)
        bad += [(index, key) for key in wrong]
        if record_scale is not None and (scale_at is None or when > scale_at):
            scale, scale_at = record_scale, when
        if vitals != Vitals():
            series.append(TimedVitals(when, vitals))
    return RecordObservations(tuple(series), scale, age, tuple(bad))


def _parse(obs: Mapping[str, Any]) -> tuple[Vitals, int | None, list[str]]:
    wrong: list[str] = []
    rr = consciousness = on_oxygen = scale = None
    if "resp_rate" in obs:
        rr = _number(obs["resp_rate"])
        if rr is None:
            wrong.append("observations.resp_rate")
    if "consciousness" in obs:
        try:
            consciousness = Consciousness(str(obs["consciousness"]).upper())
        except ValueError:
            wrong.append("observations.consciousness")
    if "on_oxygen" in obs:
        if isinstance(obs["on_oxygen"], bool):
            on_oxygen = obs["on_oxygen"]
        else:
            wrong.append("observations.on_oxygen")
    if "spo2_scale" in obs:
        if obs["spo2_scale"] in (1, 2) and not isinstance(obs["spo2_scale"], bool):
            scale = int(obs["spo2_scale"])
        else:
            wrong.append("observations.spo2_scale")
    vitals = Vitals(respiration_rate=rr, consciousness=consciousness, on_oxygen=on_oxygen)
    return vitals, scale, wrong


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
