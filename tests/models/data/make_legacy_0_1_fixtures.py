"""Writes the spectralmix 0.1 fixtures of tests/models/test_legacy.py with the OLD code.

Run from a checkout of spectralmix 0.1 (the commit before the backbone/task refactor), e.g.

    cd OLD_CHECKOUT && KERAS_BACKEND=jax python -c "import sys; sys.path.insert(0, '.'); \
        import runpy; runpy.run_path('NEW/tests/models/data/make_legacy_0_1_fixtures.py')"

Each model is tiny (under 100 KB) and has every weight moved off its initial value, so that a
converted file computing the same outputs has each weight where it belongs. Each `.npz` holds
an input and the old model's outputs on it (float32, inference mode).
"""

import os

import keras
import numpy as np

import spectralmix
from spectralmix.layers import FFTNetBlock
from spectralmix.models import FFTNetClassifier, FFTNetViTImageClassifier

HERE = os.path.dirname(os.path.abspath(__file__))


def _perturb(model, rng):
    for v in model.weights:
        value = keras.ops.convert_to_numpy(v)
        v.assign(value + 0.3 * rng.standard_normal(value.shape).astype(value.dtype))


def _write(model, name, x):
    model.save(os.path.join(HERE, f"{name}.keras"))
    y = keras.ops.convert_to_numpy(model(x, training=False))
    np.savez(os.path.join(HERE, f"{name}.npz"), inputs=x, outputs=y)


def main():
    assert not hasattr(spectralmix.models, "convert_legacy_file"), "run with spectralmix 0.1"
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)

    classifier = FFTNetClassifier(
        vocabulary_size=5,
        num_classes=3,
        max_sequence_length=8,
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        mlp_ratio=2.0,
        pooling="cls",
    )
    _perturb(classifier, rng)
    ids = np.array([[1, 2, 3, 4, 2, 1, 0, 0], [4, 4, 3, 0, 0, 0, 0, 0]], dtype="int32")
    _write(classifier, "legacy_0_1_fftnet_classifier", ids)

    vit = FFTNetViTImageClassifier(
        image_size=8,
        patch_size=4,
        num_classes=3,
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        mlp_ratio=2.0,
        token_mixer="attention",
        variant="v2",
    )
    _perturb(vit, rng)
    images = rng.standard_normal((2, 8, 8, 3)).astype("float32")
    _write(vit, "legacy_0_1_fftnet_vit_image_classifier", images)

    # A user's own model of FFTNetBlocks (the mixers with weights): loads unconverted.
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(5, 8, mask_zero=True)(inputs)
    x = FFTNetBlock(2, mlp_ratio=2.0, max_sequence_length=8, modrelu_epsilon=0.0)(x)
    x = FFTNetBlock(2, mlp_ratio=2.0, token_mixer="attention", variant="v2")(x)
    blocks = keras.Model(inputs, keras.layers.Dense(3)(x))
    _perturb(blocks, rng)
    _write(blocks, "legacy_0_1_fftnet_blocks", ids)


main()
