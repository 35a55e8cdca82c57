"""LRA Pathfinder (and Path-X): are the two dots joined by one path? Binary, pixel by pixel.

Images come from our seeded generator (`spectralmix.data.pathfinder`, after Linsley et al.
2018 as LRA uses it): made in memory from a seed, or read from files made with
`spectralmix data pathfinder`. Each image is flattened row by row into grey-level tokens
(`spectralmix.data.tokens.pixel_tokens`): 1,024 tokens at 32x32, 16,384 for Path-X at 128x128.
The model is `FFTNetClassifier` with mean pooling over the pixels; only the token mixer
differs between `"fftnet"`, `"fnet"` and `"attention"`.
"""

from __future__ import annotations

import os
from typing import Any

from spectralmix import validation
from spectralmix.data import pathfinder as data_lib
from spectralmix.data import tokens
from spectralmix.tasks import harness
from spectralmix.tasks.registry import register_task

MODEL_DEFAULTS: dict[str, Any] = {**harness.SMALL_MODEL, "pooling": "mean"}
TRAIN_DEFAULTS: dict[str, Any] = {**harness.SHORT_TRAINING, "epochs": 20}
#: Examples generated per split when no files are given: at 32x32 and at 128x128 (Path-X).
#: Small validation and test sets keep attention's evaluation affordable on a CPU.
SIZES = {
    32: {"train": 10_000, "val": 500, "test": 1_000},
    128: {"train": 2_000, "val": 64, "test": 128},
}


def task(
    data: str | os.PathLike | None = None,
    *,
    size: int = 32,
    difficulty: str = "hard",
    seed: int = 0,
    sizes: dict[str, int] | None = None,
) -> harness.Task:
    """The Pathfinder task at `size`x`size` (`128`: Path-X).

    With `data`, the splits are read from `DATA/pathfinder{size}_{difficulty}_{split}.npz`
    (`spectralmix data pathfinder`); without, they are generated in memory with `seed`,
    `sizes[split]` examples each (default `SIZES[size]`), each split from its own seed
    (`spectralmix.data.pathfinder.split_seed`, as `write_splits` uses: the files that
    `spectralmix data pathfinder --seed S` writes hold the same images).
    """
    size = validation.positive_int("size", size)
    sizes = dict(sizes or SIZES.get(size) or SIZES[32])
    name = {32: "pathfinder", 128: "pathx"}.get(size, f"pathfinder{size}")
    if difficulty != "hard":
        name = f"{name}_{difficulty}"

    def load(limit):
        splits = {}
        for split in data_lib.SPLITS:
            if data is not None:
                images, labels = data_lib.read_split(
                    data, split, size=size, difficulty=difficulty, limit=limit
                )
            else:
                count = sizes[split] if limit is None else min(limit, sizes[split])
                images, labels = data_lib.generate(
                    count, size=size, difficulty=difficulty, seed=data_lib.split_seed(seed, split)
                )
            splits[split] = harness.ArrayData(tokens.pixel_tokens(images), labels)
        return splits

    source: dict[str, Any] = {"size": size, "difficulty": difficulty}
    if data is not None:
        source["data"] = os.fspath(data)
    else:
        source.update(generated=sizes, seed=seed)
    return harness.Task(
        name=name,
        load=load,
        build_model=harness.sequence_classifier(
            name, vocabulary_size=tokens.VOCABULARY_SIZE, num_classes=2, length=size * size
        ),
        model_defaults=MODEL_DEFAULTS,
        train_defaults=TRAIN_DEFAULTS,
        sequence_length=size * size,
        token_grid=True,
        source=source,
    )


@register_task("pathfinder", data="pathfinder")
def make(data=None, *, seed: int = 0, test_examples: int | None = None) -> harness.Task:
    """Pathfinder at 32x32 (1,024 tokens), from files in `data` or generated with `seed`."""
    return task(data, size=32, seed=seed)


@register_task("pathx", data="pathfinder")
def make_pathx(data=None, *, seed: int = 0, test_examples: int | None = None) -> harness.Task:
    """Path-X at 128x128 (16,384 tokens), from files in `data` or generated with `seed`."""
    return task(data, size=128, seed=seed)


@register_task("pathfinder_easy", data="pathfinder")
def make_easy(data=None, *, seed: int = 0, test_examples: int | None = None) -> harness.Task:
    """Pathfinder at 32x32 with the easy contours (6 paddles instead of 14), the same sizes.

    On the arena's `pathfinder` (hard, LRA's setting) FFTNet, FNet and attention stayed at
    chance in 240 CPU seconds; this variant asks whether a shorter path lets a mixer learn.
    """
    return task(data, size=32, difficulty="easy", seed=seed)
