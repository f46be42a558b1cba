"""The triage model at the edge: its LiteRT implementation (imports numpy and LiteRT).

`TriageModel` is all triage needs (it lives with the manifest checks in `hub.inference.manifest`,
which the daemon imports without this module): feature rows (`wire.triage_features.extract`,
clinical units) in, one `ModelOutput` (probability of deterioration and the model's band) per row
out. The LiteRT implementation normalises the rows with the manifest's spec, quantises them to
the int8 input tensor with the tensor's own scale and zero point, scores the whole batch in one
invocation (the batch dimension is resized when it changes), dequantises the output and maps it
to a band with the manifest's thresholds. The runtime is `ai_edge_litert.interpreter`, falling
back to `tflite_runtime.interpreter`; with neither installed loading fails with a clear
`ModelError`.

A model directory is what the pipeline writes (cloud/models/artifacts/<version>/):
`model_int8.tflite`, `model_float.tflite` and `manifest.json`; loading checks the file's SHA-256
and size against the manifest before the interpreter sees a byte.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from hub.inference.manifest import (
    FILES,
    MANIFEST_FILE,
    ModelError,
    ModelOutput,
    Runtime,
    TriageModel,
    Variant,
    check_artifact,
    parse_manifest,
)
from wire.triage_features import CLIP, FEATURE_NAMES, Normalisation, band_of_probability

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

__all__ = [
    "FILES",
    "MANIFEST_FILE",
    "LiteRTInterpreter",
    "LiteRTTriageModel",
    "ModelError",
    "ModelOutput",
    "Runtime",
    "TriageModel",
    "Variant",
    "dequantize",
    "from_manifest",
    "interpreter_for",
    "load_model",
    "quantize",
    "self_test",
]


class LiteRTInterpreter:
    """One LiteRT interpreter: normalised rows in, probabilities out, batched, thread-safe."""

    def __init__(self, content: bytes, *, runtime: Runtime | None = None) -> None:
        interpreter_class = interpreter_for(runtime)
        try:
            self._interpreter = interpreter_class(model_content=content)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"LiteRT cannot load the model: {exc}") from exc
        except SystemError as exc:  # tflite-runtime 2.14 built for numpy 1 under numpy 2
            raise ModelError(
                f"the LiteRT runtime is broken in this environment (numpy {np.__version__}; "
                f"tflite-runtime needs numpy<2): {exc}"
            ) from exc
        inputs, outputs = (
            self._interpreter.get_input_details(),
            self._interpreter.get_output_details(),
        )
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError("a triage model has exactly one input and one output tensor")
        self._input: dict[str, Any] = inputs[0]
        self._output: dict[str, Any] = outputs[0]
        self.width = int(self._input["shape"][-1])
        self._batch = int(self._input["shape"][0])
        self._lock = threading.Lock()

    @property
    def input_detail(self) -> dict[str, Any]:
        """The input tensor's details (dtype, shape, quantization scale and zero point)."""
        return self._input

    def predict(self, rows: Sequence[Sequence[float]] | np.ndarray[Any, Any]) -> list[float]:
        """The probability of deterioration for each normalised row, in one invocation."""
        x = np.asarray(rows, dtype=np.float32)
        if x.size == 0:
            return []
        if x.ndim != 2 or x.shape[1] != self.width:  # noqa: PLR2004 - a batch of rows
            raise ModelError(f"the model takes rows of {self.width} inputs, got shape {x.shape}")
        with self._lock:
            try:
                if len(x) != self._batch:
                    self._interpreter.resize_tensor_input(
                        self._input["index"], [len(x), self.width]
                    )
                    self._interpreter.allocate_tensors()
                    self._input = self._interpreter.get_input_details()[0]
                    self._output = self._interpreter.get_output_details()[0]
                    self._batch = len(x)
                self._interpreter.set_tensor(self._input["index"], quantize(x, self._input))
                self._interpreter.invoke()
                raw = self._interpreter.get_tensor(self._output["index"])
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"LiteRT failed to run the model: {exc}") from exc
        return [float(p) for p in dequantize(raw, self._output).reshape(-1)]


class LiteRTTriageModel:
    """A `TriageModel` on LiteRT: normalise, quantise, invoke, dequantise, band."""

    def __init__(
        self,
        *,
        version: str,
        interpreter: LiteRTInterpreter,
        normalisation: Normalisation,
        thresholds: Mapping[str, float],
    ) -> None:
        if interpreter.width != len(FEATURE_NAMES):
            raise ModelError(
                f"the model takes {interpreter.width} inputs; this hub computes "
                f"{len(FEATURE_NAMES)} features"
            )
        self._version = version
        self.interpreter = interpreter
        self.normalisation = normalisation
        self.thresholds = dict(thresholds)
        self._mean = np.asarray(normalisation.mean, dtype=np.float64)
        self._std = np.asarray(normalisation.std, dtype=np.float64)

    @property
    def version(self) -> str:
        """The model version (the manifest's)."""
        return self._version

    def predict(self, rows: Sequence[Sequence[float]]) -> list[ModelOutput]:
        """One output per raw feature row.

        Normalises as `wire.triage_features.normalise` does (same float64 operations, vectorised).
        """
        if not rows:
            return []
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self._mean):  # noqa: PLR2004 - a batch of rows
            raise ModelError(f"a feature row has {len(self._mean)} values, got shape {x.shape}")
        normalised = np.clip((x - self._mean) / self._std, -CLIP, CLIP)
        probabilities = self.interpreter.predict(normalised)
        return [ModelOutput(p, band_of_probability(p, self.thresholds)) for p in probabilities]


def load_model(
    directory: Path, *, variant: Variant = "int8", runtime: Runtime | None = None
) -> LiteRTTriageModel:
    """The model of `variant` in a model directory, after checking its SHA-256 and size."""
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        content = (directory / FILES[variant]).read_bytes()
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the model in {directory}: {exc}") from exc
    check_artifact(manifest, content, variant=variant)
    return from_manifest(manifest, content, runtime=runtime)


def from_manifest(
    manifest: Mapping[str, Any], content: bytes, *, runtime: Runtime | None = None
) -> LiteRTTriageModel:
    """A model from its manifest (version, features, band_thresholds) and .tflite bytes."""
    spec = parse_manifest(manifest)
    interpreter = LiteRTInterpreter(content, runtime=runtime)
    return LiteRTTriageModel(
        version=spec.version,
        interpreter=interpreter,
        normalisation=spec.normalisation,
        thresholds=spec.thresholds,
    )


def self_test(
    model: LiteRTTriageModel, manifest: Mapping[str, Any], *, key: str = "self_test"
) -> int:
    """Run the manifest's self-test vectors (normalised inputs); return how many passed.

    Raises `ModelError` at the first vector whose probability is off by more than the
    tolerance or whose band differs. Use `key="self_test_float"` for the float model.
    """
    try:
        test = manifest[key]
        tolerance = float(test["tolerance"])
        vectors = list(test["vectors"])
        got = model.interpreter.predict([v["inputs"] for v in vectors])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"the manifest's {key} is malformed: {exc}") from exc
    for n, (vector, p) in enumerate(zip(vectors, got, strict=True)):
        band = band_of_probability(p, model.thresholds)
        if abs(p - float(vector["probability"])) > tolerance:
            raise ModelError(
                f"self-test vector {n}: probability {p:.4f}, expected {vector['probability']}"
            )
        if "band" in vector and band.value != vector["band"]:
            raise ModelError(f"self-test vector {n}: band {band.value}, expected {vector['band']}")
    return len(vectors)


def interpreter_for(runtime: Runtime | None = None) -> Any:  # noqa: ANN401 - LiteRT has no types
    """The Interpreter class of `runtime`, or of the first installed (ai_edge_litert first)."""
    choices: tuple[Runtime, ...] = (runtime,) if runtime else ("ai_edge_litert", "tflite_runtime")
    for name in choices:
        try:
            if name == "ai_edge_litert":
                from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - optional
            else:
                from tflite_runtime.interpreter import Interpreter  # noqa: PLC0415 - optional
        except ImportError:
            continue
        return Interpreter
    raise ModelError(
        f"no LiteRT runtime ({' or '.join(choices)}) is installed: "
        "install ai-edge-litert (the hub extra)"
    )


def quantize(values: np.ndarray[Any, Any], detail: Mapping[str, Any]) -> np.ndarray[Any, Any]:
    """`values` in the tensor's type: q = round(x / scale) + zero_point, saturated."""
    if detail["dtype"] == np.float32:
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    q = np.round(values / scale) + zero_point
    quantized: np.ndarray[Any, Any] = np.clip(q, info.min, info.max).astype(detail["dtype"])
    return quantized


def dequantize(values: np.ndarray[Any, Any], detail: Mapping[str, Any]) -> np.ndarray[Any, Any]:
    """The real values of a tensor: (q - zero_point) * scale."""
    if detail["dtype"] == np.float32:
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    real: np.ndarray[Any, Any] = (values.astype(np.float32) - zero_point) * scale
    return real
