"""FFTNetViT on Fashion-MNIST: images cut into patches, against the same ViT with attention
or FNet as its token mixer.

The images (28x28, grey, scaled to [0, 1]) are cut into 4x4 patches: 49 patch tokens and a
class token (`FFTNetViTImageClassifier`). The splits are the Image task's
(`spectralmix.tasks.image.load_splits`): a seeded, stratified 5,000 of the training images
for validation, the official test images for test.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from spectralmix.data import fashion_mnist
from spectralmix.tasks import harness, image
from spectralmix.tasks.registry import register_task

PATCH_SIZE = 4
MODEL_DEFAULTS: dict[str, Any] = {
    "hidden_dim": 64,
    "num_layers": 4,
    "num_heads": 4,
    "mlp_ratio": 2.0,
    "dropout": 0.0,
}
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 64,
    "learning_rate": 2e-3,
    "warmup_steps": 100,
    "weight_decay": 0.05,
}


def build_model(model: str = "fftnet", **options):
    """An uncompiled `FFTNetViTImageClassifier` for 28x28 grey images, 4x4 patches. A mixer
    that can be causal (`"hyena"`) is built bidirectional, as for the sequence classifiers:
    the class token comes first, so a causal mixer would give it no view of the patches."""
    from spectralmix.models import FFTNetViTBackbone, FFTNetViTImageClassifier
    from spectralmix.registry import get_token_mixer

    model = get_token_mixer(model).token_mixer_name
    options = dict(options)
    options["token_mixer_kwargs"] = harness.bidirectional_kwargs(
        model, options.get("token_mixer_kwargs")
    )
    head_dropout = options.pop("head_dropout", 0.0)
    backbone = FFTNetViTBackbone(
        image_size=28,
        patch_size=PATCH_SIZE,
        num_channels=1,
        token_mixer=model,
        name="backbone",
        **options,
    )
    return FFTNetViTImageClassifier(
        backbone=backbone,
        num_classes=image.NUM_CLASSES,
        head_dropout=head_dropout,
        name=f"fashion_vit_{model}",
    )


def task(
    directory: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    test_examples: int | None = None,
    val_per_class: int = image.VALIDATION_PER_CLASS,
) -> harness.Task:
    """The fashion_vit task: Fashion-MNIST from `directory` (else `fashion_mnist.locate`'s
    places) as `(n, 28, 28, 1)` float32 images."""
    directory = fashion_mnist.locate(directory)

    def load(limit):
        splits = image.load_splits(
            directory,
            seed=seed,
            limit=limit,
            test_examples=test_examples,
            val_per_class=val_per_class,
        )
        return {
            name: harness.ArrayData((x[..., None] / np.float32(255)).astype(np.float32), y)
            for name, (x, y) in splits.items()
        }

    return harness.Task(
        name="fashion_vit",
        load=load,
        build_model=build_model,
        model_defaults=MODEL_DEFAULTS,
        train_defaults=TRAIN_DEFAULTS,
        sequence_length=(28 // PATCH_SIZE) ** 2 + 1,
        token_grid=True,
        source={
            "data": directory,
            "seed": seed,
            "test_examples": test_examples,
            "val_per_class": val_per_class,
        },
    )


@register_task("fashion_vit", data="fashion_mnist", test_examples=2_000)
def make(data=None, *, seed: int = 0, test_examples: int | None = None) -> harness.Task:
    """The arena's fashion_vit task (the first `test_examples` test images are scored)."""
    return task(data, seed=seed, test_examples=test_examples)
