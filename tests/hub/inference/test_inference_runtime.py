"""The committed triage models in the hub's LiteRT runtime: checksums, int8 handling, self-tests."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hub.inference.runtime import (
    FILES,
    LiteRTInterpreter,
    ModelError,
    from_manifest,
    interpreter_for,
    load_model,
    self_test,
)
from wire.items import RiskBand
from wire.triage_features import FEATURE_NAMES, N_FEATURES, band_of_probability, normalise

MODEL_DIR = Path(__file__).parents[3] / "cloud" / "models" / "artifacts" / "triage-v1"
MANIFEST = json.loads((MODEL_DIR / "manifest.json").read_text())
HAS_TFLITE_RUNTIME = importlib.util.find_spec("tflite_runtime") is not None


@pytest.fixture(scope="module")
def int8():
    return load_model(MODEL_DIR, variant="int8")


@pytest.fixture(scope="module")
def float_model():
    return load_model(MODEL_DIR, variant="float")


def test_manifest_checksums_and_sizes_match_the_committed_files():
    for name in FILES.values():
        content = (MODEL_DIR / name).read_bytes()
        assert MANIFEST["files"][name]["sha256"] == hashlib.sha256(content).hexdigest()
        assert MANIFEST["files"][name]["bytes"] == len(content)
    assert (MODEL_DIR / FILES["int8"]).stat().st_size < 20 * 1024
    assert MANIFEST["synthetic_data"] is True
    assert MANIFEST["version"] == "triage-v1"


def test_both_models_load_in_litert_with_the_manifest_version(int8, float_model):
    assert int8.version == float_model.version == "triage-v1"
    assert int8.interpreter.input_detail["dtype"] == np.int8
    assert float_model.interpreter.input_detail["dtype"] == np.float32
    assert int8.interpreter.width == float_model.interpreter.width == N_FEATURES


@pytest.mark.skipif(
    not HAS_TFLITE_RUNTIME,
    reason="tflite-runtime is not installed: 2.14 needs numpy<2, this environment has numpy 2",
)
def test_both_models_load_in_tflite_runtime():
    for variant in ("int8", "float"):
        model = load_model(MODEL_DIR, variant=variant, runtime="tflite_runtime")
        assert self_test(
            model, MANIFEST, key="self_test" if variant == "int8" else "self_test_float"
        )


@pytest.mark.skipif(HAS_TFLITE_RUNTIME, reason="tflite-runtime is installed")
def test_a_missing_runtime_is_a_clear_error():
    with pytest.raises(ModelError, match="install ai-edge-litert"):
        interpreter_for("tflite_runtime")


def test_self_test_vectors_pass_on_both_models(int8, float_model):
    assert self_test(int8, MANIFEST) == len(MANIFEST["self_test"]["vectors"]) >= 8
    assert self_test(float_model, MANIFEST, key="self_test_float") >= 8
    bands = {v["band"] for v in MANIFEST["self_test"]["vectors"]}
    assert bands == {"low", "medium", "high"}


def test_self_test_vectors_come_from_the_raw_feature_rows(int8):
    for raw, vector in zip(
        MANIFEST["self_test_features"], MANIFEST["self_test"]["vectors"], strict=True
    ):
        assert normalise(raw, int8.normalisation) == pytest.approx(vector["inputs"], abs=1e-6)
        [out] = int8.predict([raw])
        assert out.probability == pytest.approx(vector["probability"], abs=1e-6)
        assert out.band.value == vector["band"]


def test_a_wrong_expectation_fails_the_self_test(int8):
    bad = json.loads(json.dumps(MANIFEST))
    vector = bad["self_test"]["vectors"][0]
    vector["probability"] = min(1.0, vector["probability"] + 0.5)
    with pytest.raises(ModelError, match="self-test vector 0"):
        self_test(int8, bad)


def test_a_tampered_model_file_is_refused(tmp_path):
    copy = tmp_path / "triage-v1"
    shutil.copytree(MODEL_DIR, copy)
    path = copy / FILES["int8"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_model(copy)


def test_a_corrupt_model_is_a_model_error_not_a_crash():
    with pytest.raises(ModelError, match="cannot load"):
        LiteRTInterpreter(b"not a flatbuffer at all" * 10)


def test_a_manifest_for_other_features_is_refused():
    other = json.loads(json.dumps(MANIFEST))
    other["features"]["names"] = list(reversed(FEATURE_NAMES))
    with pytest.raises(ModelError, match="feature names"):
        from_manifest(other, (MODEL_DIR / FILES["int8"]).read_bytes())


def test_vectorised_normalisation_is_the_wire_one(int8):
    rows = [*MANIFEST["self_test_features"], [1e6] * N_FEATURES, [-1e6] * N_FEATURES]
    expected = int8.interpreter.predict([normalise(r, int8.normalisation) for r in rows])
    assert [o.probability for o in int8.predict(rows)] == expected


def test_batched_and_single_predictions_are_identical(int8):
    rows = MANIFEST["self_test_features"]
    batched = int8.predict(rows)
    singles = [int8.predict([r])[0] for r in rows]
    assert batched == singles
    assert int8.predict([]) == []


def test_rows_of_the_wrong_width_are_refused(int8):
    with pytest.raises(ModelError, match="inputs"):
        int8.interpreter.predict([[0.0] * (N_FEATURES - 1)])


def test_int8_input_steps_are_finer_than_the_chart(int8):
    scale, _ = int8.interpreter.input_detail["quantization"]
    steps = {
        name: scale * int8.normalisation.std[FEATURE_NAMES.index(name)]
        for name in ("respiration_rate", "spo2", "systolic", "pulse", "temperature")
    }
    assert steps["temperature"] < 0.1  # the chart is in tenths of a degree
    assert all(steps[n] < 1 for n in ("respiration_rate", "spo2", "systolic", "pulse"))
    assert scale == pytest.approx(MANIFEST["int8_input"]["scale"])


def test_model_bands_follow_the_manifest_thresholds(int8):
    for out in int8.predict(MANIFEST["self_test_features"]):
        assert out.band is band_of_probability(out.probability, MANIFEST["band_thresholds"])
    assert RiskBand.LOW_MEDIUM.value not in MANIFEST["band_thresholds"]
