"""In-context recall: multi-query associative recall (MQAR) as a task for the harness.

The sequences are `spectralmix.data.recall`'s (after Zoology, Arora et al. 2023): 16
key-value pairs, then the 16 keys asked again in a random order among blank tokens, a target
at each query's position (the value of its key) and nothing elsewhere. A model tags every
position with a token (`token_tagger`: the backbone, then a `Dense` over the vocabulary);
the loss and the score count the query positions only. The score is query accuracy:
queries answered right over queries asked (`harness.scored_queries`, with a bootstrap
interval over test sequences). Chance is `1 / 63`, one of the values.

Registered at several lengths, the pairs always at the start, so the distance between a key
and its query grows with the length: `recall` (1,024 tokens), `recall_256`, `recall_4096`,
`recall_16384` and `recall_65536`. The splits are generated from the task's seed
(train from `seed`, validation from `seed + 1`, test from `seed + 2`), so no data is read:
20,000 / 1,000 / 1,000 sequences up to 1,024 tokens, and about as many tokens beyond
(`split_sizes`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spectralmix.data import recall as data_lib
from spectralmix.data.batches import ArrayData
from spectralmix.tasks import harness
from spectralmix.tasks.registry import register_task

#: Tokens of the default task, and the lengths registered (`recall_<length>`).
LENGTH = 1024
LENGTHS = (256, 1024, 4096, 16_384, 65_536)
VOCABULARY_SIZE = 128
NUM_PAIRS = 16
#: Sequences per split at up to 1,024 tokens; longer tasks keep about as many tokens per split
#: (`split_sizes`), so that a split fits in memory at 65,536 tokens.
SPLIT_SIZES = {"train": 20_000, "val": 1_000, "test": 1_000}
MODEL_DEFAULTS: dict[str, Any] = {**harness.SMALL_MODEL, "hidden_dim": 64}
TRAIN_DEFAULTS: dict[str, Any] = {**harness.SHORT_TRAINING, "learning_rate": 2e-3}


def split_sizes(length: int) -> dict[str, int]:
    """Sequences per split at `length` tokens: `SPLIT_SIZES` up to 1,024 tokens, then as many
    tokens per split (at least 256 training and 100 evaluation sequences).

    Examples:
        >>> split_sizes(65_536)
        {'train': 312, 'val': 100, 'test': 100}
    """
    return {
        name: max(256 if name == "train" else 100, min(size, size * 1024 // length))
        for name, size in SPLIT_SIZES.items()
    }


def splits(
    length: int = LENGTH, *, seed: int = 0, sizes: dict[str, int] | None = None
) -> dict[str, ArrayData]:
    """The train, validation and test sequences (`ArrayData`: tokens, targets)."""
    sizes = {**split_sizes(length), **(sizes or {})}
    out = {}
    for offset, name in enumerate(("train", "val", "test")):
        data = data_lib.generate(
            sizes[name],
            length=length,
            num_pairs=NUM_PAIRS,
            vocabulary_size=VOCABULARY_SIZE,
            seed=seed + offset,
        )
        out[name] = ArrayData(data.tokens, data.targets)
    return out


def token_tagger(model: str = "fftnet", *, length: int = LENGTH, **options):
    """An uncompiled Keras model of logits `(batch, length, VOCABULARY_SIZE)`: an
    `FFTNetBackbone` with token mixer `model` (no class token), then a `Dense` over the
    vocabulary at every position. `options` are the backbone's arguments."""
    import keras

    from spectralmix.models import FFTNetBackbone
    from spectralmix.registry import get_token_mixer

    model = get_token_mixer(model).token_mixer_name
    backbone = FFTNetBackbone(
        vocabulary_size=VOCABULARY_SIZE,
        max_sequence_length=length,
        token_mixer=model,
        name="backbone",
        **options,
    )
    token_ids = keras.Input((length,), dtype="int32", name="token_ids")
    logits = keras.layers.Dense(VOCABULARY_SIZE, dtype="float32", name="tagger")(
        backbone(token_ids)
    )
    return keras.Model(token_ids, logits, name=f"recall_{model}")


def queries_answered(model, data: ArrayData, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence of `data`, the queries `model` answers right (the arg-max token at the
    query's position is its target) and the queries asked."""
    right, asked = [], []
    for start in range(0, len(data.labels), batch_size):
        tokens = data.inputs[start : start + batch_size]
        targets = data.labels[start : start + batch_size]
        predicted = np.argmax(np.asarray(model.predict_on_batch(tokens)), axis=-1)
        queried = targets != data_lib.IGNORE
        right.append(np.sum((predicted == targets) & queried, axis=1))
        asked.append(np.sum(queried, axis=1))
    return np.concatenate(right), np.concatenate(asked)


def task(length: int = LENGTH, *, seed: int = 0) -> harness.Task:
    """The recall task at `length` tokens, its splits generated from `seed`."""
    if data_lib.IGNORE != harness.IGNORE_TARGET:  # the loss must skip what the data marks
        raise AssertionError("spectralmix.data.recall.IGNORE must be harness.IGNORE_TARGET")

    def load(limit):
        sizes = None if limit is None else {name: limit for name in SPLIT_SIZES}  # smoke runs
        return splits(length, seed=seed, sizes=sizes)

    def build(model="fftnet", **options):
        return token_tagger(model, length=length, **options)

    return harness.Task(
        name="recall" if length == LENGTH else f"recall_{length}",
        load=load,
        build_model=build,
        model_defaults=MODEL_DEFAULTS,
        train_defaults=TRAIN_DEFAULTS,
        sequence_length=length,
        source={
            "generator": "spectralmix.data.recall",
            "seed": seed,
            "length": length,
            "num_pairs": NUM_PAIRS,
            "vocabulary_size": VOCABULARY_SIZE,
            "sizes": split_sizes(length),
        },
        metric="query_accuracy",
        score=queries_answered,
    )


def _register(length: int) -> None:
    name = "recall" if length == LENGTH else f"recall_{length}"

    def make(data=None, *, seed: int = 0, test_examples: int | None = None) -> harness.Task:
        made = task(length, seed=seed)
        if test_examples is not None:
            made = harness.first_examples(made, {"test": test_examples})
        return made

    make.__qualname__ = f"make_{name}"
    make.__doc__ = f"The recall task at {length:,} tokens (generated; `data` is unused)."
    register_task(name)(make)


for _length in LENGTHS:
    _register(_length)
