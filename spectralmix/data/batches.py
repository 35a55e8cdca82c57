"""Batches for training and evaluation, for token sequences of any length and for arrays.

Splits come in two forms. `SequenceData` (a list of unpadded int32 token id arrays and
labels; `spectralmix.data.listops.ListOps` is one) is batched by length bucket
(`spectralmix.data.listops.make_batches`), so short sequences are not padded to the longest;
`ArrayData` (one array of inputs of a fixed shape, e.g. images or fixed-length token ids)
is batched as it is. Both give a `keras.utils.PyDataset`, which `fit`, `evaluate` and
`predict` accept on every backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np

from spectralmix.data import listops as sequences_lib

#: Variable-length token sequences: `token_ids` (list of int32 arrays), `labels` int32 `(n,)`.
SequenceData = sequences_lib.ListOps


@dataclasses.dataclass(frozen=True)
class ArrayData:
    """Examples of one fixed shape: `inputs` `(n, ...)` and int32 `labels` `(n,)`."""

    inputs: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        if len(self.inputs) != len(self.labels):
            raise ValueError(
                "inputs and labels must hold as many examples. Received: "
                f"{len(self.inputs)} inputs, {len(self.labels)} labels"
            )


Data = SequenceData | ArrayData


def take(data: Data, count: int | None) -> Data:
    """The first `count` examples of `data` (all of them when `count` is None)."""
    if count is None:
        return data
    if isinstance(data, ArrayData):
        return ArrayData(data.inputs[:count], data.labels[:count])
    return SequenceData(data.token_ids[:count], data.labels[:count])


def _batch_plan(data: Data, batch_size: int, *, step: int, max_length: int = 0, **kwargs):
    """`make_batches` over `data`'s lengths (one bucket for `ArrayData`)."""
    if isinstance(data, ArrayData):
        return sequences_lib.make_batches(
            np.ones(len(data.labels), np.int64), batch_size, bounds=[1], **kwargs
        )
    # The last bucket ends at `max_length` (or the longest sequence): FFT mixers depend on the
    # padded length, so a split is padded the same whatever its own longest sequence is.
    longest = max(int(data.lengths.max(initial=1)), max_length, 1)
    bounds = sequences_lib.bucket_bounds(longest, step)
    return sequences_lib.make_batches(data.lengths, batch_size, bounds=bounds, **kwargs)


def _gather(data: Data, length: int, members: np.ndarray, transform=None) -> np.ndarray:
    if isinstance(data, ArrayData):
        inputs = data.inputs[members]
        return np.stack([transform(x) for x in inputs]) if transform else inputs
    rows = [data.token_ids[i] for i in members]
    if transform:
        rows = [transform(ids) for ids in rows]
    return sequences_lib.pad(rows, length)


def dataset(
    data: Data,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    start_epoch: int = 0,
    step: int = 128,
    max_length: int = 0,
    multiple_of: int = 1,
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
):
    """`(inputs, labels)` batches of `data` as a `keras.utils.PyDataset` (`fit` takes it on
    every backend). `SequenceData` is bucketed by length (`step`-token buckets).

    With `shuffle`, epoch `e` uses the batch plan seeded by `seed + e`, so a run resumed at
    `start_epoch` sees the batches an uninterrupted one would. `augment(example, rng)` is
    applied to every example, seeded by `(seed, epoch, batch index)`. `multiple_of`: see
    `spectralmix.data.listops.make_batches`.
    """
    import keras

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"batch_size must be a positive integer. Received: batch_size={batch_size!r}"
        )

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = start_epoch
            self._plan()

        def _plan(self):
            self.batches = _batch_plan(
                data,
                batch_size,
                step=step,
                max_length=max_length,
                shuffle=shuffle,
                seed=seed + self.epoch,
                multiple_of=multiple_of,
            )

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            length, members = self.batches[index]
            transform = None
            if augment is not None:
                rng = np.random.default_rng([seed, self.epoch, index])

                def transform(example):
                    return augment(example, rng)

            return _gather(data, length, members, transform), data.labels[members]

        def on_epoch_end(self):
            if shuffle:
                self.epoch += 1
                self._plan()

    return Batches()


def iter_batches(
    data: Data, batch_size: int, step: int = 128, max_length: int = 0
) -> Iterator[tuple]:
    """`(inputs, labels)` numpy batches in a fixed order (for evaluation loops)."""
    for length, members in _batch_plan(data, batch_size, step=step, max_length=max_length):
        yield _gather(data, length, members), data.labels[members]
