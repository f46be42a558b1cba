"""The triage pipeline without TensorFlow: synthetic cohort, committed models, evaluation, card."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cloud.models import cohort, pipeline
from cloud.models.card import render
from cloud.models.cli import models_app
from cloud.models.evaluate import auroc, brier, reliability
from cloud.models.litert import LiteRTRunner, ModelRunError
from wire.triage_features import FEATURE_NAMES, Normalisation, band_of_probability, normalise

DIRECTORY = pipeline.ARTIFACTS / pipeline.VERSION
MANIFEST = json.loads((DIRECTORY / pipeline.MANIFEST_FILE).read_text())


def test_the_cohort_is_deterministic_for_a_seed_and_differs_between_seeds():
    a, b, c = (
        cohort.generate(300, seed=5),
        cohort.generate(300, seed=5),
        cohort.generate(300, seed=6),
    )
    assert a == b
    assert a != c
    rows = cohort.features(a)
    assert cohort.digest(rows, [p.outcome for p in a]) == cohort.digest(
        cohort.features(b), [p.outcome for p in b]
    )


def test_the_cohort_has_what_the_story_says():
    people = cohort.generate(4000, seed=11)
    assert 0.05 < np.mean([p.outcome for p in people]) < 0.35
    assert {len(p.series) for p in people} == {1, 2, 3, 4}
    assert 0.04 < np.mean([p.age_years is None for p in people]) < 0.12
    sets = [s.vitals for p in people for s in p.series]
    assert 0.15 < np.mean([v.respiration_rate is None for v in sets]) < 0.25
    assert any(v.spo2_scale == 2 for v in sets)
    # Deterioration follows the vitals: the sick are more often positive.
    at = FEATURE_NAMES.index("news2_score")
    news2 = np.asarray([row[at] for row in cohort.features(people)])
    y = np.asarray([p.outcome for p in people])
    assert news2[y].mean() > news2[~y].mean() + 2


def test_the_manifest_training_data_digest_is_reproducible():
    data = MANIFEST["training_data"]
    people = cohort.generate(data["patients"], seed=data["seed"])
    rows = cohort.features(people)
    assert cohort.digest(rows, [p.outcome for p in people]) == MANIFEST["training_data_digest"]
    assert data["synthetic"] is True


def test_int8_and_float_agree_on_at_least_99_percent_of_bands_held_out():
    spec = Normalisation(tuple(MANIFEST["features"]["mean"]), tuple(MANIFEST["features"]["std"]))
    people = cohort.generate(5000, seed=4242)  # neither the training nor the evaluation seed
    x = [normalise(r, spec) for r in cohort.features(people)]
    p8 = LiteRTRunner((DIRECTORY / pipeline.INT8_FILE).read_bytes()).predict(x)
    pf = LiteRTRunner((DIRECTORY / pipeline.FLOAT_FILE).read_bytes()).predict(x)
    thresholds = MANIFEST["band_thresholds"]
    same = [
        band_of_probability(a, thresholds) is band_of_probability(b, thresholds)
        for a, b in zip(p8, pf, strict=True)
    ]
    assert np.mean(same) >= 0.99
    assert float(np.mean(np.abs(p8 - pf))) < 0.01


def test_the_committed_evaluation_is_what_the_models_give():
    fresh = pipeline.evaluate_artifacts()
    assert fresh["metrics"] == MANIFEST["metrics"]
    assert fresh["self_test"] == MANIFEST["self_test"]
    m = MANIFEST["metrics"]
    assert m["band_agreement_int8_float"] >= 0.99
    assert m["auroc_model_int8"] > m["auroc_news2"]
    assert m["sensitivity_high_final"] >= m["sensitivity_high_news2"]


def test_the_model_card_is_the_rendered_manifest_and_says_synthetic():
    card = pipeline.CARD.read_text()
    assert card == render(MANIFEST)
    assert "SYNTHETIC" in card
    assert "make train" in card
    assert f"{MANIFEST['metrics']['auroc_model_int8']:.4f}" in card


def test_auroc_brier_and_reliability_on_known_values():
    assert auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert auroc([1, 1, 1, 1], [False, True, False, True]) == 0.5
    with pytest.raises(ValueError, match="both outcomes"):
        auroc([0.1, 0.2], [True, True])
    assert brier(np.asarray([1.0, 0.0]), np.asarray([True, True])) == 0.5
    table = reliability(np.asarray([0.05, 0.07, 0.95]), np.asarray([False, True, True]))
    assert [(r["patients"], r["observed"]) for r in table] == [(2.0, 0.5), (1.0, 1.0)]


def test_a_corrupt_model_is_a_model_run_error():
    with pytest.raises(ModelRunError, match="cannot load"):
        LiteRTRunner(b"\x00" * 64)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is not None, reason="tensorflow is installed here"
)
def test_train_without_tensorflow_says_how_to_get_it(tmp_path):
    result = CliRunner().invoke(models_app, ["train", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "make train" in result.output
    assert not list(tmp_path.iterdir())


def test_evaluate_command_confirms_the_manifest():
    result = CliRunner().invoke(models_app, ["evaluate"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["matches_manifest"] is True
