"""Model rollout on the hub: open (verify) a release, full install (self-test, fsync, swap), load.

Uses the bundled triage model (hub/inference/default_model/) signed with a throwaway key.
`python -m bench models`.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import hub.inference
from hub.models.holder import ModelService
from hub.models.store import ModelStore
from wire.keys import key_id
from wire.releases import ReleaseManifest, open_release, seal_release

DEFAULT = Path(hub.inference.__file__).parent / "default_model"


def _release(key: Ed25519PrivateKey, version: str) -> bytes:
    info = json.loads((DEFAULT / "manifest.json").read_text())
    artifact = (DEFAULT / "model.tflite").read_bytes()
    manifest = ReleaseManifest(
        version=version,
        created_at=datetime.now(UTC),
        key=key_id(key),
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        artifact_size=len(artifact),
        training_data_digest=info["training_data_digest"],
        feature_spec=info["feature_spec"],
        band_thresholds=info["band_thresholds"],
        self_test=info["self_test"],
        model_manifest=info,
    )
    return seal_release(manifest, artifact, key)


def _ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e3:.2f} ms, max {max(samples) * 1e3:.2f} ms"


def main() -> None:
    """Print the figures."""
    key = Ed25519PrivateKey.generate()
    sealed = _release(key, "triage-v1")
    opens = []
    for _ in range(200):
        start = time.perf_counter()
        open_release(sealed, cloud_key=key.public_key())
        opens.append(time.perf_counter() - start)
    installs, reloads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        service = ModelService(ModelStore(Path(tmp) / "models", key.public_key()))
        for n in range(2, 22):
            release = _release(key, f"triage-v{n}")
            start = time.perf_counter()
            service.store.install(release)
            installs.append(time.perf_counter() - start)
            start = time.perf_counter()
            service.reload()
            service.holder.current()  # the holder loads at first use: count it here
            reloads.append(time.perf_counter() - start)
    print(f"release size (bundled int8 model + manifest): {len(sealed)} bytes")
    print(f"open_release (size, Ed25519, manifest, SHA-256): {_ms(opens)}")
    print(f"install (verify, self-test, write + fsync, swap): {_ms(installs)}")
    print(f"reload into the holder + first use (verify, 2 interpreters): {_ms(reloads)}")
