"""NEWS2 moved to `wire.news2` so the hub and the cloud score exactly alike; this re-exports it."""

from __future__ import annotations

from wire.news2 import (
    HIGH_FROM,
    MEDIUM_FROM,
    PARAMETERS,
    RED_SCORE,
    Consciousness,
    InvalidVital,
    News2,
    Vitals,
    band,
    score,
)

__all__ = [
    "HIGH_FROM",
    "MEDIUM_FROM",
    "PARAMETERS",
    "RED_SCORE",
    "Consciousness",
    "InvalidVital",
    "News2",
    "Vitals",
    "band",
    "score",
]
