"""Runs in a fresh process per backend for `test_equivalence.py`.

`python -m tests.equivalence_worker save DIR` builds the reference models on the active
backend, saves them as `.keras` files and the inputs; `... load DIR OUT` loads them. Both write
outputs and gradients (w.r.t. the input and every trainable weight) to an `.npz`.
"""

from __future__ import annotations

import os
import sys

import keras
import numpy as np

import spectralmix.layers as sm
from spectralmix.models import (
    FFTNetBackbone,
    FFTNetClassifier,
    FFTNetViTBackbone,
    FFTNetViTImageClassifier,
)
from tests.helpers import value_and_grads

#: model name -> input shape (one example); "sequence" takes token ids (no input gradient)
MODELS = {"filter": (16, 8), "stack": (16, 8), "vit": (8, 8, 3), "sequence": (12,)}


def _build(name: str) -> keras.Model:
    if name == "sequence":
        backbone = FFTNetBackbone(
            vocabulary_size=10,
            max_sequence_length=12,
            hidden_dim=16,
            num_layers=2,
            num_heads=2,
            class_token=True,
        )
        model = FFTNetClassifier(backbone=backbone, num_classes=3)
        _perturb(model)
        return model
    if name == "vit":
        backbone = FFTNetViTBackbone(
            image_size=8, patch_size=2, hidden_dim=16, num_layers=2, num_heads=2
        )
        model = FFTNetViTImageClassifier(backbone=backbone, num_classes=5)
        _perturb(model)
        return model
    inputs = keras.Input(MODELS[name])
    if name == "filter":
        outputs = sm.AdaptiveSpectralFilter(2, name="mixer")(inputs)
    else:
        h = sm.FFTNetBlock(2, mlp_ratio=2.0, name="fftnet_v1")(inputs)
        h = sm.FFTNetBlock(2, mlp_ratio=2.0, variant="v2", name="fftnet_v2")(h)
        h = sm.FFTNetBlock(2, mlp_ratio=2.0, token_mixer="fnet", name="fnet")(h)
        h = sm.FFTNetBlock(2, mlp_ratio=2.0, token_mixer="attention", name="attn")(h)
        outputs = sm.MetaFormerBlock(
            "attention", {"num_heads": 2, "causal": True}, mlp_ratio=2.0, norm_first=True,
            name="causal_attn",
        )(h)  # fmt: skip
    model = keras.Model(inputs, outputs, name=name)
    _perturb(model)
    return model


def _perturb(model: keras.Model) -> None:
    rng = np.random.default_rng(7)
    for v in model.weights:  # off the initial values, so every weight matters
        v.assign(keras.ops.convert_to_numpy(v) + 0.2 * rng.standard_normal(v.shape))


def _evaluate(model: keras.Model, x: np.ndarray, cotangent: np.ndarray, out: str) -> None:
    if x.dtype.kind == "i":  # token ids: compare logits and weights only
        np.savez(
            out,
            y=keras.ops.convert_to_numpy(model(x)),
            **{f"weight/{v.path}": keras.ops.convert_to_numpy(v) for v in model.weights},
        )
        return
    y, gx, gw = value_and_grads(model, x, cotangent)
    arrays = {"y": y, "grad_x": gx}
    arrays.update({f"grad/{v.path}": g for v, g in zip(model.trainable_weights, gw, strict=True)})
    arrays.update({f"weight/{v.path}": keras.ops.convert_to_numpy(v) for v in model.weights})
    np.savez(out, **arrays)


def main(argv: list[str]) -> None:
    command, directory = argv[0], argv[1]
    backend = keras.config.backend()
    for name in MODELS:
        path = os.path.join(directory, f"{name}.keras")
        if command == "save":
            rng = np.random.default_rng(0)
            if name == "sequence":
                x = rng.integers(1, 10, (3, *MODELS[name])).astype("int32")
                x[1, 7:] = 0  # padding
            else:
                x = rng.standard_normal((3, *MODELS[name])).astype("float32")
            model = _build(name)
            out_shape = keras.ops.convert_to_numpy(model(x)).shape
            np.save(os.path.join(directory, f"{name}_x.npy"), x)
            np.save(
                os.path.join(directory, f"{name}_cot.npy"),
                rng.standard_normal(out_shape).astype("float32"),
            )
            model.save(path)
        else:
            model = keras.models.load_model(path)
        x = np.load(os.path.join(directory, f"{name}_x.npy"))
        cotangent = np.load(os.path.join(directory, f"{name}_cot.npy"))
        _evaluate(model, x, cotangent, os.path.join(argv[2], f"{name}_{backend}.npz"))


if __name__ == "__main__":
    main(sys.argv[1:])
