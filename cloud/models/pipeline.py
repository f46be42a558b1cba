"""The whole training pipeline: synthetic cohort -> features -> MLP -> int8 + float -> manifest.

`python -m cloud.models train` (or `make train`) runs it in .venv-train; it writes
`cloud/models/artifacts/<version>/` (both models and manifest.json) and the model card. CI never
runs it: tests load the committed artifacts. `evaluate_artifacts` re-derives the card's figures
from the committed files without TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from cloud.models import cohort
from cloud.models.evaluate import evaluate
from cloud.models.litert import LiteRTRunner
from wire.triage_features import (
    CLIP,
    FEATURE_NAMES,
    FEATURE_VERSION,
    MEASURED,
    Normalisation,
    band_of_probability,
    normalise,
)

log = structlog.get_logger(__name__)

VERSION = "triage-v1"
ARTIFACTS = Path(__file__).parent / "artifacts"
CARD = Path(__file__).resolve().parents[2] / "docs" / "models" / f"{VERSION}.md"
INT8_FILE, FLOAT_FILE, MANIFEST_FILE = "model_int8.tflite", "model_float.tflite", "manifest.json"
TRAIN_PATIENTS = 24_000
VALIDATION_SHARE = 0.2
HELD_OUT_PATIENTS = 10_000
BAND_THRESHOLDS = {"low": 0.0, "medium": 0.3, "high": 0.5}
"""Lowest model probability of each band (the model may only raise NEWS2's band).

No `low_medium`: in NEWS2 that band means "one parameter scored 3", a rule about a single vital,
not a level of risk, so the model has no probability that corresponds to it."""
SELF_TEST_VECTORS = 16
SELF_TEST_TOLERANCE = 0.02
SELF_TEST_MARGIN = 0.03
"""Self-test vectors keep this far from every band threshold, so their band is unambiguous."""
REPRODUCE = "make train   # or: .venv-train/bin/python -m cloud.models train"


def train_and_write(
    *,
    seed: int = cohort.TRAIN_SEED,
    held_out_seed: int = cohort.HELD_OUT_SEED,
    patients: int = TRAIN_PATIENTS,
    held_out: int = HELD_OUT_PATIENTS,
    out: Path = ARTIFACTS,
    card: Path = CARD,
) -> dict[str, Any]:
    """Run the pipeline end to end and return the manifest it wrote. Needs tensorflow."""
    from cloud.models.card import write_card  # noqa: PLC0415 - avoid an import cycle
    from cloud.models.convert import to_float, to_int8  # noqa: PLC0415 - needs tensorflow
    from cloud.models.train import train  # noqa: PLC0415 - needs tensorflow

    log.info("cohort_generating", patients=patients, seed=seed, synthetic=True)
    people = cohort.generate(patients, seed=seed)
    rows = cohort.features(people)
    labels = [p.outcome for p in people]
    spec = _normalisation(rows)
    x = [normalise(r, spec) for r in rows]
    cut = int(len(x) * (1 - VALIDATION_SHARE))
    log.info("training", rows=cut, validation=len(x) - cut)
    model = train(x[:cut], labels[:cut], seed=seed, validation=(x[cut:], labels[cut:]))
    int8, float_ = to_int8(model, x[:cut]), to_float(model)
    directory = out / VERSION
    directory.mkdir(parents=True, exist_ok=True)
    (directory / INT8_FILE).write_bytes(int8)
    (directory / FLOAT_FILE).write_bytes(float_)
    manifest: dict[str, Any] = {
        "model": "triage",
        "version": VERSION,
        "synthetic_data": True,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reproduce": REPRODUCE,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in ((INT8_FILE, int8), (FLOAT_FILE, float_))
        },
        "training_data": {
            "generator": cohort.GENERATOR,
            "synthetic": True,
            "seed": seed,
            "patients": patients,
            "validation_share": VALIDATION_SHARE,
            "held_out_seed": held_out_seed,
            "held_out_patients": held_out,
        },
        "training_data_digest": cohort.digest(rows, labels),
        "feature_spec": f"triage-features/{FEATURE_VERSION}",
        "features": {
            "version": FEATURE_VERSION,
            "names": list(FEATURE_NAMES),
            "mean": list(spec.mean),
            "std": list(spec.std),
            "clip": CLIP,
            "normalisation": "x' = clip((x - mean) / std, -clip, clip), outside the graph",
        },
        "band_thresholds": BAND_THRESHOLDS,
    }
    _evaluate_into(manifest, directory)
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    write_card(manifest, card)
    log.info("model_written", directory=str(directory), card=str(card), synthetic=True)
    return manifest


def evaluate_artifacts(directory: Path = ARTIFACTS / VERSION) -> dict[str, Any]:
    """Recompute the evaluation of the committed models (no tensorflow): the manifest's figures."""
    manifest: dict[str, Any] = json.loads((directory / MANIFEST_FILE).read_text())
    fresh = dict(manifest)
    _evaluate_into(fresh, directory)
    return fresh


def _evaluate_into(manifest: dict[str, Any], directory: Path) -> None:
    spec = Normalisation(tuple(manifest["features"]["mean"]), tuple(manifest["features"]["std"]))
    data = manifest["training_data"]
    people = cohort.generate(data["held_out_patients"], seed=data["held_out_seed"])
    raw = cohort.features(people)
    x = [normalise(r, spec) for r in raw]
    int8 = LiteRTRunner((directory / INT8_FILE).read_bytes())
    float_ = LiteRTRunner((directory / FLOAT_FILE).read_bytes())
    p_int8, p_float = int8.predict(x), float_.predict(x)
    report = evaluate(people, p_int8, p_float, manifest["band_thresholds"])
    scale = float(int8.input["quantization"][0])
    manifest["metrics"] = report["metrics"]
    manifest["calibration"] = {"reliability_int8": report["reliability_int8"]}
    manifest["int8_input"] = {
        "scale": scale,
        "zero_point": int(int8.input["quantization"][1]),
        "resolution": {
            name: round(scale * spec.std[FEATURE_NAMES.index(name)], 4)
            for name in (*MEASURED, "age_years")
        },
        "clinical_range": {
            name: [
                round(
                    spec.mean[FEATURE_NAMES.index(name)]
                    - CLIP * spec.std[FEATURE_NAMES.index(name)],
                    1,
                ),
                round(
                    spec.mean[FEATURE_NAMES.index(name)]
                    + CLIP * spec.std[FEATURE_NAMES.index(name)],
                    1,
                ),
            ]
            for name in (*MEASURED, "age_years")
        },
    }
    manifest.update(_self_tests(raw, x, p_int8, p_float, manifest["band_thresholds"]))


def _self_tests(
    raw: list[tuple[float, ...]],
    x: list[tuple[float, ...]],
    p_int8: np.ndarray[Any, Any],
    p_float: np.ndarray[Any, Any],
    thresholds: dict[str, float],
) -> dict[str, Any]:
    """Vectors spread over the probability range, none near a threshold, int8 and float agreeing."""
    limits = [t for t in thresholds.values() if t > 0]
    usable = [
        i
        for i in np.argsort(p_int8, kind="mergesort")
        if all(abs(p_int8[i] - t) > SELF_TEST_MARGIN for t in limits)
        and all(abs(p_float[i] - t) > SELF_TEST_MARGIN for t in limits)
    ]
    picks: list[int] = []
    for k in range(SELF_TEST_VECTORS):  # spread over the probability range, not its quantiles
        target = k / (SELF_TEST_VECTORS - 1)
        best = min((i for i in usable if i not in picks), key=lambda i: abs(p_int8[i] - target))
        picks.append(int(best))

    def vectors(p: np.ndarray[Any, Any]) -> list[dict[str, Any]]:
        return [
            {
                "inputs": [round(v, 6) for v in x[i]],
                "probability": round(float(p[i]), 6),
                "band": band_of_probability(float(p[i]), thresholds).value,
            }
            for i in picks
        ]

    return {
        "self_test": {"tolerance": SELF_TEST_TOLERANCE, "vectors": vectors(p_int8)},
        "self_test_float": {"tolerance": SELF_TEST_TOLERANCE, "vectors": vectors(p_float)},
        "self_test_features": [list(raw[i]) for i in picks],
    }


def _normalisation(rows: list[tuple[float, ...]]) -> Normalisation:
    data = np.asarray(rows, dtype=np.float64)
    mean = [round(float(v), 6) for v in data.mean(axis=0)]
    std = [round(max(float(v), 1e-3), 6) for v in data.std(axis=0)]
    return Normalisation(tuple(mean), tuple(std))
