"""Helpers shared by the buffer tests (imported by name: tests are not a package)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hub.buffer import NewReading, Priority
from wire.items import Reading
from wire.samples import sample_reading

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)

ReadingFactory = Callable[..., Reading]


def reading_factory(seed: int = 1234) -> ReadingFactory:
    """Distinct sample readings, received one second apart after T0, from a seeded generator."""
    rng = random.Random(seed)
    counter = iter(range(10**9))

    def make(*, device: int = 1, patient: int = 1, at: datetime | None = None) -> Reading:
        i = next(counter)
        when = at if at is not None else T0 + timedelta(seconds=i)
        return sample_reading(rng, when, device=device, patient=patient)

    return make


def new(
    reading: Reading, *, priority: int = Priority.ROUTINE, key: str | None = None
) -> NewReading:
    return NewReading(reading, key if key is not None else f"key-{reading.id}", priority)
