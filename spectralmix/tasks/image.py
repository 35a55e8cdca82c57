"""LRA Image on real data: Fashion-MNIST as sequences of 1,024 grey-level tokens.

LRA's Image task classifies CIFAR-10 images read pixel by pixel as a sequence. CIFAR-10 cannot
be installed offline here; Fashion-MNIST can (Debian's `dataset-fashion-mnist`: 60,000
training and 10,000 test images of ten kinds of clothing, 28x28, grey). Each image is padded
with 2 black pixels on every side to 32x32, LRA's image size, and flattened row by row into
1,024 tokens (`spectralmix.data.tokens.pixel_tokens`, vocabulary 257 with padding).

Splits: validation is a seeded, stratified 5,000 of the official training images (500 per
class), training the other 55,000, test the official test images (`test_examples` of them, in
the file's order, when fewer are wanted).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from spectralmix.data import fashion_mnist, tokens
from spectralmix.tasks import harness
from spectralmix.tasks.registry import register_task

IMAGE_SIZE = 32
NUM_CLASSES = 10
VALIDATION_PER_CLASS = 500
MODEL_DEFAULTS: dict[str, Any] = {**harness.SMALL_MODEL, "pooling": "mean"}
TRAIN_DEFAULTS: dict[str, Any] = dict(harness.SHORT_TRAINING)


def load_splits(
    directory: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    limit: int | None = None,
    test_examples: int | None = None,
    val_per_class: int = VALIDATION_PER_CLASS,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{"train", "val", "test"}`: `(images uint8 (n, 28, 28), labels int32 (n,))` each.

    Validation is `val_per_class` training images of each class drawn with `seed`;
    `limit` keeps the first `limit` of each split, `test_examples` the first of the test set.
    """
    images, labels = fashion_mnist.load("train", directory)
    rng = np.random.default_rng(seed)
    held_out = np.concatenate(
        [
            rng.choice(np.flatnonzero(labels == c), val_per_class, replace=False)
            for c in range(NUM_CLASSES)
        ]
    )
    held_out = rng.permutation(held_out)
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    test_images, test_labels = fashion_mnist.load("test", directory, limit=test_examples)
    splits = {
        "train": (images[kept], labels[kept]),
        "val": (images[held_out], labels[held_out]),
        "test": (test_images, test_labels),
    }
    return {name: (x[:limit], y[:limit]) for name, (x, y) in splits.items()}


def pad_to(images: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """`(n, h, w)` images centred on a black `size`x`size` canvas."""
    n, height, width = images.shape
    top, left = (size - height) // 2, (size - width) // 2
    if top < 0 or left < 0:
        raise ValueError(f"Images of {height}x{width} do not fit in {size}x{size}")
    canvas = np.zeros((n, size, size), images.dtype)
    canvas[:, top : top + height, left : left + width] = images
    return canvas


def task(
    directory: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    test_examples: int | None = None,
    val_per_class: int = VALIDATION_PER_CLASS,
) -> harness.Task:
    """The Image task: Fashion-MNIST from `directory` (else `fashion_mnist.locate`'s
    places) as 1,024-token sequences."""
    directory = fashion_mnist.locate(directory)

    def load(limit):
        splits = load_splits(
            directory,
            seed=seed,
            limit=limit,
            test_examples=test_examples,
            val_per_class=val_per_class,
        )
        return {
            name: harness.ArrayData(tokens.pixel_tokens(pad_to(x)), y)
            for name, (x, y) in splits.items()
        }

    return harness.Task(
        name="image",
        load=load,
        build_model=harness.sequence_classifier(
            "image",
            vocabulary_size=tokens.VOCABULARY_SIZE,
            num_classes=NUM_CLASSES,
            length=IMAGE_SIZE * IMAGE_SIZE,
        ),
        model_defaults=MODEL_DEFAULTS,
        train_defaults=TRAIN_DEFAULTS,
        sequence_length=IMAGE_SIZE * IMAGE_SIZE,
        token_grid=True,
        source={
            "data": directory,
            "seed": seed,
            "test_examples": test_examples,
            "val_per_class": val_per_class,
        },
    )


@register_task("image", data="fashion_mnist", test_examples=2_000)
def make(data=None, *, seed: int = 0, test_examples: int | None = None) -> harness.Task:
    """The arena's Image task (the first `test_examples` test images are scored)."""
    return task(data, seed=seed, test_examples=test_examples)
