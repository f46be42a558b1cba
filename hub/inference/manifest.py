"""The triage model's contract and manifest, without its runtime: no numpy, no LiteRT.

What the hub can check about a model before it pays for the runtime (numpy and LiteRT, about
30 MB of RSS with the interpreters): the manifest is complete and made for the features this hub
computes, and the artifact's SHA-256 and size match it. `hub.inference.runtime` builds the model
from the same manifest; the daemon imports that module only when triage first needs the model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from hub.errors import HubError
from wire.triage_features import FEATURE_NAMES, Normalisation

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from wire.items import RiskBand

MANIFEST_FILE = "manifest.json"
FILES = {"int8": "model_int8.tflite", "float": "model_float.tflite"}
Variant = Literal["int8", "float"]
Runtime = Literal["ai_edge_litert", "tflite_runtime"]


class ModelError(HubError):
    """The model cannot be loaded, fails its checks or cannot score these inputs."""


@dataclass(frozen=True, slots=True)
class ModelOutput:
    """The model's answer for one feature row."""

    probability: float
    band: RiskBand


class TriageModel(Protocol):
    """What triage needs from a model; any runtime with this shape will do."""

    @property
    def version(self) -> str:
        """The model version, stored in every triage result."""
        ...

    def predict(self, rows: Sequence[Sequence[float]]) -> list[ModelOutput]:
        """One output per feature row (`wire.triage_features` order, clinical units)."""
        ...


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What a runtime manifest says about the model, checked against this hub's features."""

    version: str
    normalisation: Normalisation
    thresholds: dict[str, float]


def parse_manifest(manifest: Mapping[str, Any]) -> ModelSpec:
    """The manifest's version, normalisation and band thresholds; `ModelError` if unusable here."""
    try:
        features = manifest["features"]
        if tuple(features["names"]) != FEATURE_NAMES:
            raise ModelError("the model's feature names are not the ones this hub computes")
        spec = Normalisation(tuple(features["mean"]), tuple(features["std"]))
        version, thresholds = str(manifest["version"]), dict(manifest["band_thresholds"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"the model manifest is incomplete or malformed: {exc}") from exc
    return ModelSpec(version, spec, thresholds)


def check_artifact(manifest: Mapping[str, Any], content: bytes, *, variant: Variant) -> None:
    """Raise `ModelError` unless `content` has the SHA-256 and size the manifest lists."""
    files = manifest.get("files")
    expected = files.get(FILES[variant]) if isinstance(files, dict) else None
    if not isinstance(expected, dict):
        expected = {}
    if hashlib.sha256(content).hexdigest() != expected.get("sha256") or len(
        content
    ) != expected.get("bytes"):
        raise ModelError(f"{FILES[variant]} does not match the SHA-256 and size in its manifest")
