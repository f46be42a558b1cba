"""From readings to NEWS2 inputs, pure: the latest value of each vital within a time window.

Readings come from BLE devices (blood pressure, pulse, SpO2, temperature); respiration rate,
consciousness, supplemental oxygen and the SpO2 scale come from the agent's observations. Units
are converted to the chart's (mmHg, °C); a component without a value is skipped, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wire.news2 import Consciousness, Vitals
from wire.triage_inputs import chart_value

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime, timedelta
    from uuid import UUID

    from wire.items import Reading


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


def reading_vitals(reading: Reading) -> dict[str, float]:
    """The vitals one reading carries, in chart units; the first component of a vital wins."""
    values: dict[str, float] = {}
    for name, component in reading.components.items():
        charted = chart_value(reading.kind, name, component.value, component.unit)
        if charted is not None:
            values.setdefault(*charted)
    return values


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
        for vital, value in reading_vitals(reading).items():
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
