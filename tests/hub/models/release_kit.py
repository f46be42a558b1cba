"""Signed releases of tiny real LiteRT models, for the model store tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tiny_tflite import expected, logistic_model

from wire.keys import key_id
from wire.releases import ReleaseManifest, SelfTest, SelfTestVector, seal_release

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

WEIGHTS = [0.5, -1.0, 2.0]
VECTORS = [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [-1.0, 0.5, -0.25]]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def build_release(
    key: Ed25519PrivateKey,
    version: str,
    *,
    bias: float = 0.0,
    claimed_bias: float | None = None,
) -> bytes:
    """A signed release of sigmoid(WEIGHTS . x + bias); self-test vectors computed for
    `claimed_bias` (default: the true bias), so a different claim fails the self-test."""
    artifact = logistic_model(WEIGHTS, bias)
    claim = bias if claimed_bias is None else claimed_bias
    manifest = ReleaseManifest(
        version=version,
        created_at=T0 + timedelta(days=int(version.rsplit(".", maxsplit=1)[-1])),
        key=key_id(key),
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        artifact_size=len(artifact),
        metrics={"auroc": 0.9},
        training_data_digest="sha256:" + "ab" * 32,
        feature_spec="1",
        band_thresholds={"low": 0.0, "medium": 0.5, "high": 0.9},
        self_test=SelfTest(
            tolerance=0.01,
            vectors=tuple(
                SelfTestVector(inputs=tuple(v), probability=expected(WEIGHTS, claim, v))
                for v in VECTORS
            ),
        ),
    )
    return seal_release(manifest, artifact, key)
