"""Batches for training and evaluation, for token sequences of any length and for arrays.

Splits come in two forms. `SequenceData` (a list of unpadded int32 token id arrays and
labels; `spectralmix.data.listops.ListOps` is one) is batched by length bucket
(`make_batches`), so short sequences are not padded to the longest; `ArrayData` (one array
of inputs of a fixed shape, e.g. images or fixed-length token ids) is batched as it is. Both
give a `keras.utils.PyDataset`, which `fit`, `evaluate` and `predict` accept on every backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

from spectralmix.validation import positive_int


class SequenceData(NamedTuple):
    """Variable-length token sequences: `token_ids` a list of int32 arrays (unpadded),
    `labels` int32 `(n,)`."""

    token_ids: list[np.ndarray]
    labels: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(t) for t in self.token_ids], dtype=np.int64)


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


def pad(token_ids: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Stacks sequences into an int32 `(n, length)` array padded with 0 at the end."""
    longest = max((len(t) for t in token_ids), default=0)
    if longest > length:
        raise ValueError(f"length={length} is shorter than the longest sequence ({longest})")
    out = np.zeros((len(token_ids), length), dtype=np.int32)
    for row, ids in zip(out, token_ids, strict=True):
        row[: len(ids)] = ids
    return out


def bucket_bounds(max_length: int, step: int = 128) -> list[int]:
    """Padded lengths: multiples of `step` up to `max_length` (the last one is `max_length`).

    Few distinct shapes keep JAX and `tf.function` from retracing per batch; padding stays
    under `step` tokens per example.
    """
    bounds = list(range(step, max_length, step))
    return [*bounds, max_length]


def make_batches(
    lengths: np.ndarray,
    batch_size: int,
    *,
    bounds: Sequence[int] | None = None,
    shuffle: bool = False,
    seed: int | Sequence[int] = 0,
    multiple_of: int = 1,
) -> list[tuple[int, np.ndarray]]:
    """Groups example indices into batches of at most `batch_size` whose lengths share a bucket.

    Returns `(padded_length, indices)` pairs. With `shuffle`, examples are shuffled within
    their buckets and the batch order is shuffled (seeded); otherwise batches come in bucket
    order. Every example is in a batch.

    `multiple_of` makes every batch size a multiple of it (data-parallel training splits each
    batch evenly over that many devices): examples left over in a bucket move up to the next
    (longer) bucket, and a final remainder is completed by repeating some of its examples,
    so nothing is dropped (at most `multiple_of - 1` examples are seen twice an epoch).
    """
    if multiple_of < 1 or batch_size % multiple_of:
        raise ValueError(
            "batch_size must be a multiple of multiple_of (the number of devices). "
            f"Received: batch_size={batch_size}, multiple_of={multiple_of}"
        )
    bounds = sorted(bounds or bucket_bounds(max(int(np.max(lengths, initial=1)), 1)))
    lengths = np.asarray(lengths)
    if lengths.size and lengths.max() > bounds[-1]:
        raise ValueError(f"A sequence of {lengths.max()} tokens exceeds the largest bucket")
    rng = np.random.default_rng(seed)
    bucket_of = np.searchsorted(bounds, lengths, side="left")
    batches = []
    carried = np.zeros(0, dtype=np.int64)
    for bucket, bound in enumerate(bounds):
        members = np.flatnonzero(bucket_of == bucket)
        if shuffle:
            members = rng.permutation(members)
        members = np.concatenate([carried, members])
        usable = len(members) // multiple_of * multiple_of
        for start in range(0, usable, batch_size):
            batches.append((int(bound), members[start : min(start + batch_size, usable)]))
        carried = members[usable:]
    if len(carried):
        batches.append((int(bounds[-1]), np.resize(carried, multiple_of)))
    if shuffle:
        order = rng.permutation(len(batches))
        batches = [batches[i] for i in order]
    return batches


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
        return make_batches(np.ones(len(data.labels), np.int64), batch_size, bounds=[1], **kwargs)
    # The last bucket ends at `max_length` (or the longest sequence): FFT mixers depend on the
    # padded length, so a split is padded the same whatever its own longest sequence is.
    longest = max(int(data.lengths.max(initial=1)), max_length, 1)
    bounds = bucket_bounds(longest, step)
    return make_batches(data.lengths, batch_size, bounds=bounds, **kwargs)


def padded_length(length: int, multiple: int, extra_tokens: int = 0) -> int:
    """The least `padded >= length` with `padded + extra_tokens` a multiple of `multiple`.

    Examples:
        >>> padded_length(13, 4), padded_length(13, 4, extra_tokens=1), padded_length(16, 4)
        (16, 15, 16)
    """
    return -(-(length + extra_tokens) // multiple) * multiple - extra_tokens


def _gather(data: Data, length: int, members: np.ndarray, transform=None) -> np.ndarray:
    if isinstance(data, ArrayData):
        inputs = data.inputs[members]
        return np.stack([transform(x) for x in inputs]) if transform else inputs
    rows = [data.token_ids[i] for i in members]
    if transform:
        rows = [transform(ids) for ids in rows]
    return pad(rows, length)


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
    length_multiple: int = 1,
    extra_tokens: int = 0,
):
    """`(inputs, labels)` batches of `data` as a `keras.utils.PyDataset` (`fit` takes it on
    every backend). `SequenceData` is bucketed by length (`step`-token buckets).

    `length_multiple` (sequence parallelism over that many devices): each `SequenceData`
    batch is padded further, with token 0 as any padding, until its length plus
    `extra_tokens` (a class token the model prepends) is a multiple of it
    (`padded_length`). `ArrayData` keeps its shape.

    With `shuffle`, epoch `e` uses the batch plan seeded by `(seed, e)`, so a run resumed at
    `start_epoch` sees the batches an uninterrupted one would (in the same order: train with
    `fit(shuffle=False)`, or Keras reorders them), and two seeds' plans are independent.
    `augment(example, rng)` is applied to every example, seeded by `(seed, epoch, batch
    index)`. `multiple_of`: see `make_batches`.
    """
    import keras

    positive_int("batch_size", batch_size)
    positive_int("length_multiple", length_multiple)

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
                seed=(seed, self.epoch),
                multiple_of=multiple_of,
            )

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            length, members = self.batches[index]
            length = padded_length(length, length_multiple, extra_tokens)
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
