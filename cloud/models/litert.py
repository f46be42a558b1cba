"""Run a .tflite triage model in the cloud (evaluation, the full-precision model), batched.

The cloud's own small runner: `cloud` may not import `hub`, whose runtime does the same for the
edge. Int8 inputs are quantised and outputs dequantised with the tensor's own scale and zero
point, exactly as on the hub.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cloud.errors import CloudError

if TYPE_CHECKING:
    from collections.abc import Sequence


class ModelRunError(CloudError):
    """The model cannot be loaded or run (no LiteRT installed, corrupt file, wrong input width)."""


class LiteRTRunner:
    """One interpreter for one model; `predict` takes normalised rows, returns probabilities."""

    def __init__(self, content: bytes) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - optional
        except ImportError:
            try:
                from tflite_runtime.interpreter import Interpreter  # noqa: PLC0415 - optional
            except ImportError:
                raise ModelRunError(
                    "no LiteRT runtime: install ai-edge-litert (the cloud or train extra)"
                ) from None
        try:
            self._interpreter = Interpreter(model_content=content)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelRunError(f"LiteRT cannot load the model: {exc}") from exc
        self.input: dict[str, Any] = self._interpreter.get_input_details()[0]
        self.output: dict[str, Any] = self._interpreter.get_output_details()[0]
        self.width = int(self.input["shape"][-1])
        self._batch = int(self.input["shape"][0])

    def predict(self, rows: Sequence[Sequence[float]]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The probability of deterioration for each normalised row, in one invocation."""
        x = np.asarray(rows, dtype=np.float32).reshape(-1, self.width)
        if len(x) == 0:
            return np.zeros(0)
        if len(x) != self._batch:
            self._interpreter.resize_tensor_input(self.input["index"], [len(x), self.width])
            self._interpreter.allocate_tensors()
            self.input = self._interpreter.get_input_details()[0]
            self.output = self._interpreter.get_output_details()[0]
            self._batch = len(x)
        self._interpreter.set_tensor(self.input["index"], quantize(x, self.input))
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self.output["index"])
        return dequantize(raw, self.output).reshape(-1).astype(np.float64)


def quantize(values: np.ndarray[Any, Any], detail: dict[str, Any]) -> np.ndarray[Any, Any]:
    """`values` in the tensor's type: q = round(x / scale) + zero_point, saturated."""
    if detail["dtype"] == np.float32:
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    q = np.round(values / scale) + zero_point
    quantized: np.ndarray[Any, Any] = np.clip(q, info.min, info.max).astype(detail["dtype"])
    return quantized


def dequantize(values: np.ndarray[Any, Any], detail: dict[str, Any]) -> np.ndarray[Any, Any]:
    """The real values of a tensor: (q - zero_point) * scale."""
    if detail["dtype"] == np.float32:
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    real: np.ndarray[Any, Any] = (values.astype(np.float32) - zero_point) * scale
    return real
