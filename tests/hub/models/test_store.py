from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from release_kit import VECTORS, WEIGHTS, build_release
from tiny_tflite import expected, logistic_model

import hub.inference
from hub.inference.runtime import LiteRTInterpreter, ModelError
from hub.models.store import ModelStore, NoPreviousModel, ReleaseRefused
from wire.keys import key_id
from wire.releases import SIGNATURE_LEN, ReleaseManifest, open_release, seal_release


def _predict(store: ModelStore, row: list[float]) -> float:
    loaded = store.load_active()
    assert loaded is not None
    return loaded.model.predict([row])[0]


def test_good_release_activates_and_scores(store, cloud_key):
    result = store.install(build_release(cloud_key, "1.1", bias=0.25))
    assert (result.version, result.status, result.previous) == ("1.1", "activated", None)
    assert store.active_version() == "1.1"
    assert _predict(store, VECTORS[1]) == pytest.approx(expected(WEIGHTS, 0.25, VECTORS[1]), 1e-5)
    files = sorted(p.name for p in (store.dir / "1.1").iterdir())
    assert files == ["manifest.json", "model.tflite", "release.bin"]
    assert json.loads((store.dir / "1.1" / "manifest.json").read_text())["version"] == "1.1"


def test_installing_the_active_release_again_changes_nothing(store, cloud_key):
    sealed = build_release(cloud_key, "1.1")
    store.install(sealed)
    assert store.install(sealed).status == "already_active"
    assert store.previous_version() is None


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def _refused(store: ModelStore, sealed: bytes, **kwargs) -> str:
    with pytest.raises(ReleaseRefused) as info:
        store.install(sealed, **kwargs)
    return info.value.reason


@pytest.fixture
def installed(store, cloud_key) -> ModelStore:
    store.install(build_release(cloud_key, "1.1", bias=0.25))
    return store


def _unchanged(store: ModelStore) -> None:
    assert store.active_version() == "1.1"
    assert _predict(store, VECTORS[1]) == pytest.approx(expected(WEIGHTS, 0.25, VECTORS[1]), 1e-5)
    assert [m.version for m in store.installed()] == ["1.1"]


def test_artifact_byte_flipped_is_refused(installed, cloud_key):
    sealed = build_release(cloud_key, "1.2")
    reason = _refused(installed, _flip(sealed, len(sealed) - SIGNATURE_LEN - 10))
    assert "signature does not verify" in reason
    _unchanged(installed)


def test_manifest_byte_flipped_is_refused(installed, cloud_key):
    sealed = build_release(cloud_key, "1.2")
    offset = sealed.index(b'"version":"1.2"') + len('"version":"1.')
    reason = _refused(installed, _flip(sealed, offset))
    assert "signature does not verify" in reason
    _unchanged(installed)


def test_wrongly_signed_release_is_refused(installed):
    reason = _refused(installed, build_release(Ed25519PrivateKey.generate(), "1.2"))
    assert "signature does not verify" in reason
    _unchanged(installed)


def test_unsigned_release_is_refused(installed, cloud_key):
    sealed = build_release(cloud_key, "1.2")
    assert "length mismatch" in _refused(installed, sealed[:-SIGNATURE_LEN])
    zeroed = sealed[:-SIGNATURE_LEN] + bytes(SIGNATURE_LEN)
    assert "signature does not verify" in _refused(installed, zeroed)
    _unchanged(installed)


def test_self_test_failure_is_refused(installed, cloud_key):
    reason = _refused(installed, build_release(cloud_key, "1.2", bias=0.0, claimed_bias=1.0))
    assert reason.startswith("self-test vector 0: the model answers 0.5000")
    _unchanged(installed)


def test_garbage_model_fails_self_test(installed, cloud_key):
    good = open_release(build_release(cloud_key, "1.2"), cloud_key=cloud_key.public_key())
    junk = b"not a tflite model at all"
    manifest = good.manifest.model_copy(
        update={
            "artifact_sha256": hashlib.sha256(junk).hexdigest(),
            "artifact_size": len(junk),
            "key": key_id(cloud_key),
        }
    )
    assert isinstance(manifest, ReleaseManifest)
    reason = _refused(installed, seal_release(manifest, junk, cloud_key))
    assert reason.startswith("self-test: LiteRT cannot load the model")
    _unchanged(installed)


def test_downgrade_needs_to_be_explicit(installed, cloud_key):
    installed.install(build_release(cloud_key, "1.10", bias=0.5))
    old = build_release(cloud_key, "1.9", bias=0.75)
    assert "older than the active 1.10" in _refused(installed, old)
    assert installed.active_version() == "1.10"
    assert installed.install(old, allow_downgrade=True).previous == "1.10"
    assert installed.active_version() == "1.9"


def test_rollback_restores_the_previous_model(installed, cloud_key):
    installed.install(build_release(cloud_key, "1.2", bias=-0.5))
    assert _predict(installed, VECTORS[1]) == pytest.approx(
        expected(WEIGHTS, -0.5, VECTORS[1]), 1e-5
    )
    result = installed.rollback()
    assert (result.version, result.previous) == ("1.1", "1.2")
    assert (installed.active_version(), installed.previous_version()) == ("1.1", "1.2")
    _p = _predict(installed, VECTORS[1])
    assert _p == pytest.approx(expected(WEIGHTS, 0.25, VECTORS[1]), 1e-5)


def test_rollback_without_previous_is_refused(installed):
    with pytest.raises(NoPreviousModel):
        installed.rollback()
    assert installed.active_version() == "1.1"


def test_only_active_and_previous_are_kept(installed, cloud_key):
    installed.install(build_release(cloud_key, "1.2"))
    installed.install(build_release(cloud_key, "1.3"))
    assert [(m.version, m.state, m.valid) for m in installed.installed()] == [
        ("1.3", "active", True),
        ("1.2", "previous", True),
    ]


def test_corrupted_active_falls_back_to_previous(installed, cloud_key):
    installed.install(build_release(cloud_key, "1.2", bias=-0.5))
    release = installed.dir / "1.2" / "release.bin"
    release.write_bytes(_flip(release.read_bytes(), 40))
    loaded = installed.load_active()
    assert loaded is not None
    assert loaded.version == "1.1"
    states = {m.version: (m.state, m.valid) for m in installed.installed()}
    assert states == {"1.2": ("active", False), "1.1": ("previous", True)}


def test_nothing_installed_uses_the_bundled_default(tmp_path, cloud_key):
    shipped = json.loads(
        (Path(hub.inference.__file__).parent / "default_model" / "manifest.json").read_text()
    )
    store = ModelStore(tmp_path / "models", cloud_key.public_key())
    assert store.active_version() is None
    assert store.installed() == []
    loaded = store.load_active()
    assert loaded is not None
    assert (loaded.version, loaded.source) == (shipped["version"], "default")
    assert loaded.triage is not None
    vectors = shipped["self_test"]["vectors"]
    got = loaded.triage.predict(shipped["self_test_features"])
    for output, vector in zip(got, vectors, strict=True):
        assert output.probability == pytest.approx(vector["probability"], abs=0.02)
        assert output.band.value == vector["band"]
    store.install(build_release(cloud_key, "1.1"))
    loaded = store.load_active()
    assert loaded is not None
    assert loaded.source == "release"


def test_no_model_at_all_means_news2_only(tmp_path, cloud_key):
    store = ModelStore(tmp_path / "models", cloud_key.public_key(), default=tmp_path / "none")
    assert store.load_active() is None


def test_litert_model_refuses_rows_of_the_wrong_width():
    model = LiteRTInterpreter(logistic_model(WEIGHTS, 0.0))
    with pytest.raises(ModelError, match=r"takes rows of 3 inputs"):
        model.predict([[1.0, 2.0]])


DEFAULT_DIR = Path(hub.inference.__file__).parent / "default_model"


def _committed_release(cloud_key, version: str, **manifest_changes) -> bytes:
    shipped = json.loads((DEFAULT_DIR / "manifest.json").read_text())
    artifact = (DEFAULT_DIR / "model.tflite").read_bytes()
    manifest = ReleaseManifest(
        version=version,
        created_at=shipped["created_at"],
        key=key_id(cloud_key),
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        artifact_size=len(artifact),
        training_data_digest=shipped["training_data_digest"],
        feature_spec=shipped["feature_spec"],
        band_thresholds=shipped["band_thresholds"],
        self_test=shipped["self_test"],
        model_manifest=shipped | manifest_changes,
    )
    return seal_release(manifest, artifact, cloud_key)


def test_the_bundled_model_is_the_committed_int8_artifact():
    shipped = json.loads((DEFAULT_DIR / "manifest.json").read_text())
    files = shipped["files"]["model_int8.tflite"]
    content = (DEFAULT_DIR / "model.tflite").read_bytes()
    assert (hashlib.sha256(content).hexdigest(), len(content)) == (files["sha256"], files["bytes"])


def test_a_release_of_the_real_model_activates_with_its_triage_model(store, cloud_key):
    store.install(_committed_release(cloud_key, "triage-v2"))
    loaded = store.load_active()
    assert loaded is not None
    assert (loaded.version, loaded.source) == ("triage-v2", "release")
    assert loaded.triage is not None


def test_a_model_for_other_features_is_refused(store, cloud_key):
    shipped = json.loads((DEFAULT_DIR / "manifest.json").read_text())
    features = shipped["features"] | {"names": list(reversed(shipped["features"]["names"]))}
    reason = _refused(store, _committed_release(cloud_key, "triage-v2", features=features))
    assert reason.startswith("this hub cannot run it: the model's feature names")
    assert store.active_version() is None


def test_triage_results_name_the_release_version(store, cloud_key):
    store.install(_committed_release(cloud_key, "triage-v7"))
    loaded = store.load_active()
    assert loaded is not None
    assert loaded.triage is not None
    assert loaded.triage.version == "triage-v7"


def test_a_damaged_active_copy_is_repaired_by_installing_it_again(installed, cloud_key):
    installed.install(build_release(cloud_key, "1.2", bias=-0.5))
    release = installed.dir / "1.2" / "release.bin"
    release.write_bytes(b"damaged")
    result = installed.install(build_release(cloud_key, "1.2", bias=-0.5))
    assert (result.status, result.previous) == ("activated", "1.1")
    assert (installed.active_version(), installed.previous_version()) == ("1.2", "1.1")
    assert all(m.valid for m in installed.installed())
