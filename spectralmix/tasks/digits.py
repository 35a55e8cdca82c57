"""A small FFTNetViT on scikit-learn's bundled handwritten digits (1,797 real 8×8 images).

Each pixel is a patch (`FFTNetViTImageClassifier`, patch size 1: 64 tokens and a class token),
mixed by two FFTNet blocks and classified from the class token. The split is fixed
(stratified, 20% test, seed 0), so results compare across backends and token mixers.
"""

from __future__ import annotations

import time

import numpy as np

NUM_CLASSES = 10


def load_split(seed: int = 0):
    """`(x_train, y_train, x_test, y_test)`: images `(n, 8, 8, 1)` in [0, 1], integer labels."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:  # pragma: no cover - exercised only without scikit-learn
        raise ImportError(
            "The digits task needs scikit-learn: pip install scikit-learn (or, in a clone "
            'of spectralmix, pip install -e ".[demo]")'
        ) from error
    digits = load_digits()
    images = (digits.images.astype("float32") / 16.0)[..., None]  # pixel values are 0..16
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, random_state=seed, stratify=digits.target
    )
    return x_train, y_train.astype("int32"), x_test, y_test.astype("int32")


def build_model(token_mixer: str = "fftnet"):
    from spectralmix.models import FFTNetViTBackbone, FFTNetViTImageClassifier

    backbone = FFTNetViTBackbone(
        image_size=8,
        patch_size=1,
        num_channels=1,
        hidden_dim=64,
        num_layers=2,
        num_heads=4,
        mlp_ratio=2.0,
        dropout=0.1,
        token_mixer=token_mixer,
        name="backbone",
    )
    return FFTNetViTImageClassifier(
        backbone=backbone, num_classes=NUM_CLASSES, name=f"digits_{token_mixer}"
    )


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
