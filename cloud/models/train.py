"""Train the triage MLP with tensorflow-cpu. Needs the `[train]` extra (.venv-train, `make train`).

TensorFlow is imported inside the functions only: the rest of `cloud.models` (and mypy in .venv,
where tensorflow is not installed) never needs it.

The model is deliberately small (23 inputs, two hidden layers of 32 and 16 ReLU units, one
sigmoid output: 1,313 weights) so the int8 LiteRT model stays far below 20 KB and runs in
microseconds on a Raspberry Pi. Inputs are the normalised rows of `wire.triage_features`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

HIDDEN = (32, 16)
EPOCHS = 40
BATCH = 256
LEARNING_RATE = 2e-3


def train(
    rows: Sequence[Sequence[float]],
    labels: Sequence[bool],
    *,
    seed: int,
    validation: tuple[Sequence[Sequence[float]], Sequence[bool]],
) -> Any:  # noqa: ANN401 - a keras.Model; tensorflow is optional
    """A fitted Keras MLP on normalised `rows`; early-stopped on `validation`'s loss."""
    import numpy as np  # noqa: PLC0415 - the [train] extra
    import tensorflow as tf  # noqa: PLC0415 - the [train] extra, only when training

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    x = np.asarray(rows, dtype=np.float32)
    y = np.asarray(labels, dtype=np.float32)
    inputs = tf.keras.Input(shape=(x.shape[1],), name="features")
    hidden = inputs
    for width in HIDDEN:
        hidden = tf.keras.layers.Dense(width, activation="relu")(hidden)
    output = tf.keras.layers.Dense(1, activation="sigmoid", name="deterioration")(hidden)
    model = tf.keras.Model(inputs, output, name="triage_mlp")
    model.compile(
        optimizer=tf.keras.optimizers.Adam(LEARNING_RATE),
        loss="binary_crossentropy",
        metrics=[tf.keras.metrics.AUC(name="auroc")],
    )
    vx = np.asarray(validation[0], dtype=np.float32)
    vy = np.asarray(validation[1], dtype=np.float32)
    model.fit(
        x,
        y,
        epochs=EPOCHS,
        batch_size=BATCH,
        validation_data=(vx, vy),
        callbacks=[
            tf.keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=5, restore_best_weights=True
            )
        ],
        verbose=0,
        shuffle=True,
    )
    return model
