"""The triage model's evaluation on a held-out SYNTHETIC cohort: discrimination, calibration, int8.

Pure numpy over predictions already made (the caller runs the models with `cloud.models.litert`):

- AUROC of the model's probability and of NEWS2's aggregate alone (rank statistic, ties halved);
- for the high band: sensitivity (deteriorating patients called high), specificity and alert rate,
  for NEWS2 alone, the model alone and the combination the hub uses (the higher of the two bands);
- calibration: Brier score (and the no-skill reference, prevalence * (1 - prevalence)) and a
  reliability table of ten equal-width probability bins;
- int8 against float: agreement of the model band and of the final band, probability differences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from wire.items import RiskBand
from wire.news2 import band as news2_band_of
from wire.news2 import score
from wire.triage_features import (
    BAND_ORDER,
    band_of_probability,
    higher_band,
    latest_vitals,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from cloud.models.cohort import Patient

Array = np.ndarray[Any, Any]


def auroc(scores: Sequence[float] | Array, labels: Sequence[bool] | Array) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count half."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        raise ValueError("AUROC needs both outcomes")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def brier(probabilities: Array, labels: Array) -> float:
    """Mean squared error of the probabilities against the 0/1 outcomes."""
    return float(np.mean((np.asarray(probabilities) - np.asarray(labels, dtype=np.float64)) ** 2))


def reliability(probabilities: Array, labels: Array, bins: int = 10) -> list[dict[str, float]]:
    """Per equal-width probability bin: patients, mean predicted, observed rate (empty bins out)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    index = np.minimum((p * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            table.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "patients": float(mask.sum()),
                    "predicted": round(float(p[mask].mean()), 4),
                    "observed": round(float(y[mask].mean()), 4),
                }
            )
    return table


def news2_of(patients: Sequence[Patient]) -> tuple[Array, list[RiskBand]]:
    """NEWS2 aggregate and band of each patient's latest vitals (a lower bound when incomplete)."""
    results = [score(latest_vitals(p.series)) for p in patients]
    return np.asarray([r.score for r in results], dtype=np.float64), [
        news2_band_of(r.score, r.subscores) for r in results
    ]


def evaluate(
    patients: Sequence[Patient],
    p_int8: Array,
    p_float: Array,
    thresholds: Mapping[str, float],
) -> dict[str, Any]:
    """Every figure of the model card for one held-out cohort and both models' predictions."""
    y = np.asarray([p.outcome for p in patients], dtype=bool)
    news2_scores, news2_bands = news2_of(patients)
    bands_int8 = [band_of_probability(float(p), thresholds) for p in p_int8]
    bands_float = [band_of_probability(float(p), thresholds) for p in p_float]
    final_int8 = [higher_band(a, b) for a, b in zip(news2_bands, bands_int8, strict=True)]
    final_float = [higher_band(a, b) for a, b in zip(news2_bands, bands_float, strict=True)]
    prevalence = float(y.mean())
    metrics: dict[str, float] = {
        "patients": float(len(y)),
        "prevalence": round(prevalence, 4),
        "auroc_model_int8": round(auroc(p_int8, y), 4),
        "auroc_model_float": round(auroc(p_float, y), 4),
        "auroc_news2": round(auroc(news2_scores, y), 4),
        "auroc_final_band_int8": round(auroc([BAND_ORDER.index(b) for b in final_int8], y), 4),
        "brier_int8": round(brier(p_int8, y), 4),
        "brier_float": round(brier(p_float, y), 4),
        "brier_no_skill": round(prevalence * (1 - prevalence), 4),
        "band_agreement_int8_float": round(_agree(bands_int8, bands_float), 4),
        "final_band_agreement_int8_float": round(_agree(final_int8, final_float), 4),
        "max_abs_probability_diff": round(float(np.max(np.abs(p_int8 - p_float))), 4),
        "mean_abs_probability_diff": round(float(np.mean(np.abs(p_int8 - p_float))), 5),
    }
    for name, bands in (("news2", news2_bands), ("model_int8", bands_int8), ("final", final_int8)):
        high = np.asarray([b is RiskBand.HIGH for b in bands])
        metrics[f"sensitivity_high_{name}"] = round(float(high[y].mean()), 4)
        metrics[f"specificity_high_{name}"] = round(float((~high[~y]).mean()), 4)
        metrics[f"alert_rate_high_{name}"] = round(float(high.mean()), 4)
    escalated = sum(
        BAND_ORDER.index(f) > BAND_ORDER.index(n)
        for f, n in zip(final_int8, news2_bands, strict=True)
    )
    metrics["escalated_by_model"] = round(escalated / len(y), 4)
    return {"metrics": metrics, "reliability_int8": reliability(p_int8, y)}


def _agree(a: Sequence[RiskBand], b: Sequence[RiskBand]) -> float:
    return sum(x is y for x, y in zip(a, b, strict=True)) / len(a)
