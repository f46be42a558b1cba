"""Convert the trained model to LiteRT: full-integer int8 (the hub's) and float32 (the cloud's).

Needs the `[train]` extra. The int8 model quantises weights, activations, input and output to
int8 using a representative dataset of normalised training rows; two extra rows at -CLIP and
+CLIP pin the input tensor's range to exactly [-CLIP, CLIP] (`wire.triage_features`), so its
scale is 2 * CLIP / 255 standard deviations per step whatever the sample happens to contain.
The input keeps a dynamic batch dimension: the hub resizes it to score a batch in one call.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from wire.triage_features import CLIP, N_FEATURES

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

REPRESENTATIVE_ROWS = 20_000


def to_int8(model: Any, representative: Sequence[Sequence[float]]) -> bytes:  # noqa: ANN401
    """The full-integer int8 .tflite bytes of a Keras `model` (int8 input and output)."""
    import numpy as np  # noqa: PLC0415 - the [train] extra
    import tensorflow as tf  # noqa: PLC0415 - the [train] extra

    sample = [list(r) for r in representative[:REPRESENTATIVE_ROWS]]
    sample += [[-CLIP] * N_FEATURES, [CLIP] * N_FEATURES]

    def rows() -> Iterator[list[Any]]:
        for row in sample:
            yield [np.asarray([row], dtype=np.float32)]

    with _converter(model, tf) as converter:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = rows
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        return bytes(converter.convert())


def to_float(model: Any) -> bytes:  # noqa: ANN401 - a keras.Model
    """The float32 .tflite bytes of a Keras `model` (the cloud's full-precision model)."""
    import tensorflow as tf  # noqa: PLC0415 - the [train] extra

    with _converter(model, tf) as converter:
        return bytes(converter.convert())


@contextmanager
def _converter(model: Any, tf: Any) -> Iterator[Any]:  # noqa: ANN401 - tensorflow objects
    """A converter from the model exported as a SavedModel (frozen variables, batch dim free)."""
    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        yield tf.lite.TFLiteConverter.from_saved_model(tmp)
