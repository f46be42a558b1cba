"""Triage a batch of patients: features, NEWS2, the model, the safety rule, the results. Pure.

**Safety rule: the final band is the higher of NEWS2's band and the model's band.** The model
may escalate a case (a low NEWS2 with a worrying trend becomes high), never de-escalate it: a
case NEWS2 calls high stays high whatever the model says, and with no model (none installed, or
it failed) triage is NEWS2 alone.

Every `TriageResult` records the model version, the input hash (the content hash of the
canonical feature input, `wire.triage_features.input_hash`), NEWS2's aggregate and subscores and
whether NEWS2 was complete. `score` is the model's probability of deterioration (0-1); when no
model ran, `model_version` is `NEWS2_ONLY` and `score` is the NEWS2 aggregate.

The caller supplies `now` and the result ids (uuid7), so the same inputs give the same results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wire.items import RiskBand, TriageResult
from wire.triage_features import TimedVitals, extract_with_news2, higher_band, input_hash

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from uuid import UUID

    from hub.inference.runtime import TriageModel
    from wire.news2 import News2

NEWS2_ONLY = "news2-only"


@dataclass(frozen=True, slots=True)
class Case:
    """One patient's recent vitals to triage, and the readings they came from."""

    series: tuple[TimedVitals, ...]
    age_years: float | None = None
    patient_id: str | None = None
    reading_ids: tuple[UUID, ...] = ()
    at: datetime | None = None
    """The case's moment (recorded in the result)."""


def combine(news2: News2, model_band: RiskBand | None) -> RiskBand:
    """The final band: the higher of NEWS2's and the model's (escalate, never de-escalate)."""
    return news2.band if model_band is None else higher_band(news2.band, model_band)


def triage(
    cases: Sequence[Case],
    model: TriageModel | None,
    *,
    now: datetime,
    ids: Sequence[UUID],
    window_s: int | None = None,
) -> list[TriageResult]:
    """One result per case, the model run once over the whole batch.

    `window_s` is the window the cases' vitals were gathered over (recorded in each result).

    Raises `wire.news2.InvalidVital` if a case holds an impossible value (check vitals before
    batching them; `hub.inference.vitals.gather` only passes chart-unit values through).
    """
    if len(ids) != len(cases):
        raise ValueError(f"{len(cases)} cases need as many result ids, got {len(ids)}")
    extracted = [extract_with_news2(c.series, age_years=c.age_years) for c in cases]
    rows = [row for row, _ in extracted]
    news2 = [scored for _, scored in extracted]
    outputs = model.predict(rows) if model is not None and rows else None
    results = []
    for n, (case, row, scored) in enumerate(zip(cases, rows, news2, strict=True)):
        output = outputs[n] if outputs is not None else None
        results.append(
            TriageResult(
                id=ids[n],
                patient_id=case.patient_id,
                reading_ids=case.reading_ids,
                computed_at=now,
                band=combine(scored, output.band if output else None),
                score=output.probability if output else float(scored.score),
                news2_score=scored.score,
                news2_subscores=scored.subscores,
                complete=scored.complete,
                model_version=model.version if model is not None else NEWS2_ONLY,
                input_hash=input_hash(row),
                window_s=window_s,
                at=case.at,
            )
        )
    return results
