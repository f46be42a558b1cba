"""Realistic sample batches from a seeded random generator: for tests, benchmarks and the demo."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from wire.ids import uuid7
from wire.items import Body, Component, Reading

if TYPE_CHECKING:
    import random
    from uuid import UUID

# (kind, [(component, unit, mean, sd, decimals)]) as common BLE devices report them.
_VITALS: tuple[tuple[str, tuple[tuple[str, str, float, float, int], ...]], ...] = (
    (
        "blood_pressure",
        (
            ("systolic", "mm[Hg]", 128, 18, 0),
            ("diastolic", "mm[Hg]", 82, 11, 0),
            ("mean_arterial", "mm[Hg]", 97, 12, 0),
            ("pulse", "/min", 76, 12, 0),
        ),
    ),
    ("body_temperature", (("temperature", "Cel", 36.9, 0.6, 1),)),
    ("spo2", (("spo2", "%", 96, 2.5, 0), ("pulse", "/min", 78, 13, 0))),
    ("heart_rate", (("heart_rate", "/min", 74, 12, 0),)),
    ("glucose", (("glucose", "mg/dL", 112, 30, 0),)),
    ("body_weight", (("weight", "kg", 61, 12, 2),)),
)


def sample_reading(rng: random.Random, now: datetime, *, device: int, patient: int) -> Reading:
    """One plausible reading from one of six device kinds, received at `now`."""
    kind, components = rng.choice(_VITALS)
    values = {
        name: Component(
            value=round(rng.gauss(mean, sd), decimals)
            if decimals
            else float(round(rng.gauss(mean, sd))),
            unit=unit,
        )
        for name, unit, mean, sd, decimals in components
    }
    measured = now - timedelta(seconds=rng.randint(1, 600))
    return Reading(
        id=uuid7(now, rng.randbytes(10)),
        device_id=f"ble-{kind[:4]}-{device:04d}",
        kind=kind,
        components=values,
        device_time=measured.replace(tzinfo=None, microsecond=0),
        measured_at=measured.replace(microsecond=0),
        received_at=now,
        quality=(),
        patient_id=f"pat-{patient:06d}",
        encounter_id=None,
        device_seq=rng.randint(1, 5000) if kind == "glucose" else None,
    )


def sample_body(n: int, rng: random.Random, now: datetime) -> Body:
    """A batch body of `n` mixed vital-sign readings from a health post's devices, seeded."""
    readings = []
    for i in range(n):
        t = now + timedelta(milliseconds=37 * i)
        readings.append(
            sample_reading(rng, t, device=rng.randint(1, 12), patient=rng.randint(1, 400))
        )
    return Body(readings=tuple(readings))


def sample_batch_id(rng: random.Random, now: datetime) -> UUID:
    """A UUIDv7 batch id from a seeded generator."""
    return uuid7(now, rng.randbytes(10))
