"""From readings to NEWS2 inputs, pure: the latest value of each vital within a time window.

Readings come from BLE devices (blood pressure, pulse, SpO2, temperature); respiration rate,
consciousness, supplemental oxygen and the SpO2 scale come from the agent's observations. Units
are converted to the chart's (mmHg, °C); a component without a value is skipped, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wire.news2 import Consciousness, Vitals

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime, timedelta
    from uuid import UUID

    from wire.items import Reading

KPA_TO_MMHG = 7.500_615_75  # 1 kPa = 7.50062 mmHg (ISO 80000-4)


@dataclass(frozen=True, slots=True)
class Observations:
    """What the agent observed (from the phone's records)."""

    respiration_rate: float | None = None
    consciousness: Consciousness | None = None
    on_oxygen: bool | None = None
    spo2_scale: int = 1


@dataclass(frozen=True, slots=True)
class VitalsInput:
    """NEWS2 inputs and the readings they came from."""

    vitals: Vitals
    reading_ids: tuple[UUID, ...]


# (reading kind, component) -> vital; later sources of the same vital win by time.
_SOURCES = {
    ("blood_pressure", "systolic"): "systolic",
    ("blood_pressure", "pulse"): "pulse",
    ("heart_rate", "heart_rate"): "pulse",
    ("spo2_spot_check", "spo2"): "spo2",
    ("spo2_spot_check", "pulse"): "pulse",
    ("spo2_continuous", "spo2"): "spo2",
    ("spo2_continuous", "pulse"): "pulse",
    ("body_temperature", "temperature"): "temperature",
}


def gather(
    readings: Iterable[Reading],
    *,
    at: datetime,
    window: timedelta,
    observations: Observations | None = None,
) -> VitalsInput:
    """The latest value of each vital measured in (at - window, at], with the readings used."""
    latest: dict[str, tuple[datetime, float, UUID]] = {}
    for reading in readings:
        when = reading.measured_at or reading.received_at
        if not at - window < when <= at:
            continue
        for name, component in reading.components.items():
            vital = _SOURCES.get((reading.kind, name))
            value = _in_chart_units(vital, component.value, component.unit)
            if vital is None or value is None:
                continue
            if vital not in latest or when > latest[vital][0]:
                latest[vital] = (when, value, reading.id)
    obs = observations or Observations()
    vitals = Vitals(
        respiration_rate=obs.respiration_rate,
        spo2=_value(latest, "spo2"),
        spo2_scale=obs.spo2_scale,
        on_oxygen=obs.on_oxygen,
        systolic=_value(latest, "systolic"),
        pulse=_value(latest, "pulse"),
        consciousness=obs.consciousness,
        temperature=_value(latest, "temperature"),
    )
    ids = tuple(sorted({entry[2] for entry in latest.values()}, key=str))
    return VitalsInput(vitals, ids)


def _value(latest: dict[str, tuple[datetime, float, UUID]], vital: str) -> float | None:
    entry = latest.get(vital)
    return None if entry is None else entry[1]


def _in_chart_units(vital: str | None, value: float | None, unit: str) -> float | None:
    """The value in the unit NEWS2 is charted in, or None if it cannot be converted."""
    if vital is None or value is None:
        return None
    conversions = {
        ("systolic", "mm[Hg]"): value,
        ("systolic", "kPa"): value * KPA_TO_MMHG,
        ("pulse", "/min"): value,
        ("spo2", "%"): value,
        ("temperature", "Cel"): value,
        ("temperature", "[degF]"): (value - 32) * 5 / 9,
    }
    return conversions.get((vital, unit))
