"""A small FFTNet on scikit-learn's bundled handwritten digits (1,797 real 8×8 images).

Each image becomes a sequence of 16 tokens (2×2-pixel patches in raster order), embedded,
given a learned position, mixed by two `FFTNetBlock`s, mean-pooled and classified. The split
is fixed (stratified, 20% test, seed 0), so results compare across backends and mixers.
"""

from __future__ import annotations

import time

import numpy as np

PATCH = 2
NUM_CLASSES = 10


def load_split(seed: int = 0):
    """`(x_train, y_train, x_test, y_test)`: tokens `(n, 16, 4)` in [0, 1], integer labels."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:  # pragma: no cover - exercised only without scikit-learn
        raise ImportError(
            "The digits task needs scikit-learn: pip install 'spectralmix[demo]'"
        ) from error
    digits = load_digits()
    images = digits.images.astype("float32") / 16.0  # pixel values are 0..16
    n = images.shape[0]
    patches = images.reshape(n, 8 // PATCH, PATCH, 8 // PATCH, PATCH).transpose(0, 1, 3, 2, 4)
    tokens = patches.reshape(n, (8 // PATCH) ** 2, PATCH * PATCH)
    x_train, x_test, y_train, y_test = train_test_split(
        tokens, digits.target, test_size=0.2, random_state=seed, stratify=digits.target
    )
    return x_train, y_train.astype("int32"), x_test, y_test.astype("int32")


def build_model(
    token_mixer: str = "fftnet",
    hidden_dim: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    dropout: float = 0.1,
):
    import keras

    from spectralmix.layers import FFTNetBlock, PositionEmbedding

    num_tokens = (8 // PATCH) ** 2
    inputs = keras.Input((num_tokens, PATCH * PATCH), name="patches")
    h = keras.layers.Dense(hidden_dim, name="patch_embedding")(inputs)
    h = PositionEmbedding(num_tokens, name="position_embedding")(h)
    for i in range(num_layers):
        h = FFTNetBlock(
            num_heads, mlp_ratio=2.0, dropout=dropout, token_mixer=token_mixer, name=f"block_{i}"
        )(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    outputs = keras.layers.Dense(NUM_CLASSES, name="head")(h)
    return keras.Model(inputs, outputs, name=f"digits_{token_mixer}")


def train(
    epochs: int = 40,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    token_mixer: str = "fftnet",
    seed: int = 0,
    verbose: int | str = 1,
) -> dict:
    """Trains on the fixed split and returns the metrics (test accuracy first)."""
    import keras

    keras.utils.set_random_seed(seed)
    x_train, y_train, x_test, y_test = load_split()
    model = build_model(token_mixer)
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=verbose)
    train_seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return {
        "accuracy": round(float(accuracy), 4),
        "loss": round(float(loss), 4),
        "task": "digits",
        "backend": keras.config.backend(),
        "token_mixer": token_mixer,
        "epochs": epochs,
        "train_examples": len(x_train),
        "test_examples": len(x_test),
        "train_seconds": round(train_seconds, 1),
        "parameters": model.count_params(),
    }
