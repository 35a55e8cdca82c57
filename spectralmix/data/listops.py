"""LRA ListOps: the TSV reader, the fixed vocabulary and length-bucketed batches.

The Long Range Arena files (`basic_{train,val,test}.tsv[.gz]`) have a header `Source<TAB>Target`;
`Source` is a ListOps expression such as `( ( [MAX 2 ) 9 ) ]` and `Target` its value 0-9.
Tokenisation follows LRA's input pipeline: the parentheses are dropped, the remaining
whitespace-separated tokens (`[MIN [MAX [MED [SM ] 0 … 9`) map to fixed ids.

Batches are bucketed by length: examples of similar length are batched together and padded
to the bucket's bound only, so a batch of 600-token expressions is not padded to 2000. The
padding id is 0, which `FFTNetClassifier`'s embedding turns into a Keras mask.

Examples:
    >>> encode("( ( [MAX 2 ) 9 ) ]")
    [13, 4, 11, 16]
    >>> decode([13, 4, 11, 16])
    '[MAX 2 9 ]'
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from spectralmix.data import batches
from spectralmix.validation import choice, one_line, optional_positive_int

#: Id 0 pads (masked by the models), id 1 is a class token for models that read one from the
#: id stream (spectralmix's classifiers learn their own, so the reader does not insert it).
PAD, CLS = "[PAD]", "[CLS]"
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
VOCABULARY: tuple[str, ...] = (PAD, CLS, *(str(d) for d in range(10)), *OPERATORS, "]")
TOKEN_IDS: dict[str, int] = {token: i for i, token in enumerate(VOCABULARY)}
VOCABULARY_SIZE = len(VOCABULARY)
NUM_CLASSES = 10
#: LRA ListOps sequences are at most 2,000 tokens (after the parentheses are dropped).
MAX_LENGTH = 2000
SPLITS = ("train", "val", "test")
_DROPPED = frozenset("()")
_LABELS = frozenset(str(d) for d in range(NUM_CLASSES))
_OPERATOR_IDS = frozenset(TOKEN_IDS[op] for op in OPERATORS)
_CLOSE_ID = TOKEN_IDS["]"]

#: One split: `token_ids` is a list of int32 arrays (unpadded), `labels` int32 `(n,)`.
ListOps = batches.SequenceData


def encode(source: str, *, max_length: int = MAX_LENGTH) -> list[int]:
    """Token ids of one expression (parentheses dropped). Unknown tokens and expressions
    longer than `max_length` raise `ValueError`: nothing is truncated."""
    ids = []
    for token in source.split():
        if token in _DROPPED:
            continue
        if token not in TOKEN_IDS or token in (PAD, CLS):
            raise ValueError(
                f"Unknown ListOps token {token!r}; the vocabulary is {list(VOCABULARY[2:])}. "
                f"Received: source={_clip(source)}"
            )
        ids.append(TOKEN_IDS[token])
    if len(ids) > max_length:
        raise ValueError(
            f"A ListOps expression has {len(ids)} tokens, more than max_length={max_length} "
            f"(nothing is truncated). Received: source={_clip(source)}"
        )
    return ids


def decode(token_ids: Sequence[int]) -> str:
    """The tokens of `token_ids` joined by spaces (padding skipped)."""
    return " ".join(VOCABULARY[int(i)] for i in token_ids if int(i) != 0)


def _clip(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[:width] + "...")


_GZIP_MAGIC = b"\x1f\x8b"


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """`(line number, text)` of a UTF-8 file, gunzipped when `path` ends in `.gz`. A `.gz`
    that is not gzip, bytes that are not UTF-8 and a gzip file without the `.gz` name raise a
    one-line `ValueError` naming the file (and the line)."""
    compressed = path.endswith(".gz")
    try:
        with (gzip.open if compressed else open)(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if number == 1 and not compressed and raw.startswith(_GZIP_MAGIC):
                    raise ValueError(
                        f"{path!r} is gzip-compressed but its name does not end in '.gz': "
                        "rename it to end in .gz (or gunzip it)"
                    )
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise ValueError(
                        f"{path!r} line {number} is not UTF-8 text: byte "
                        f"{raw[error.start : error.start + 1]!r} at column {error.start + 1}. "
                        f"Received: {_clip(raw.decode('utf-8', 'replace').rstrip())}"
                    ) from None
                yield number, text.rstrip("\r\n")
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(
            f"{path!r} is not a readable gzip file ({one_line(error)}): a name ending in "
            "'.gz' must hold gzip data (a plain TSV must not end in .gz)"
        ) from None


def read_tsv(
    path: str | os.PathLike, *, max_length: int = MAX_LENGTH, limit: int | None = None
) -> ListOps:
    """Reads an LRA ListOps TSV file (plain or `.gz`) with a `Source<TAB>Target` header.

    Args:
        path: the file.
        max_length: longest expression accepted, in tokens; longer ones raise `ValueError`.
        limit: read only the first `limit` examples (for smoke runs).
    """
    if not os.path.isfile(path):
        raise ValueError(f"No ListOps file at path={os.fspath(path)!r}")
    optional_positive_int("limit", limit)
    path = os.fspath(path)
    token_ids, labels = [], []
    lines = _lines(path)
    try:
        _, first = next(lines, (1, ""))
        header = first.split("\t")
        if header != ["Source", "Target"]:
            raise ValueError(
                f"{path!r} is not an LRA ListOps TSV: expected the header "
                f"'Source<TAB>Target'. Received: {header!r}"
            )
        for number, line in lines:
            if limit is not None and len(labels) == limit:
                break
            fields = line.split("\t")
            if len(fields) != 2 or fields[1].strip() not in _LABELS:
                raise ValueError(
                    f"{path!r} line {number}: expected 'expression<TAB>0-9'. "
                    f"Received: {_clip(line)}"
                )
            try:
                ids = encode(fields[0], max_length=max_length)
            except ValueError as error:
                raise ValueError(f"{path!r} line {number}: {error}") from None
            token_ids.append(np.asarray(ids, np.int32))
            labels.append(int(fields[1]))
    finally:
        lines.close()
    return ListOps(token_ids, np.asarray(labels, dtype=np.int32))


def split_path(directory: str | os.PathLike, split: str) -> str:
    """`DIR/basic_{split}.tsv.gz` or `DIR/basic_{split}.tsv`, whichever exists."""
    choice("split", split, SPLITS)
    for suffix in (".tsv.gz", ".tsv"):
        path = os.path.join(os.fspath(directory), f"basic_{split}{suffix}")
        if os.path.isfile(path):
            return path
    raise ValueError(
        f"No basic_{split}.tsv.gz or basic_{split}.tsv in data={os.fspath(directory)!r}. "
        "Make the files with `spectralmix data listops --out DIR`."
    )


def permute_arguments(token_ids: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """The same expression with every operator's arguments in a random order.

    MIN, MAX, MED and SUM-MOD are symmetric functions of their arguments, so the value (the
    label) is unchanged: a label-preserving augmentation of the training split, like a flip
    for images. The length is unchanged too, so the example stays in its length bucket.

    Examples:
        >>> ids = encode("[MAX 2 [MIN 4 7 ] 0 ]")
        >>> decode(permute_arguments(ids, np.random.default_rng(3)))
        '[MAX 2 0 [MIN 7 4 ] ]'
    """
    # stack[-1] is the open expression: [operator tokens, argument, argument, ...], each a
    # list of ids; the bottom entry collects the top-level items.
    stack: list[list[list[int]]] = [[[]]]
    for token in token_ids:
        token = int(token)
        if token in _OPERATOR_IDS:
            stack.append([[token]])
        elif token == _CLOSE_ID:
            if len(stack) == 1:
                raise ValueError(f"Unbalanced ListOps expression: {_clip(decode(token_ids))}")
            head, *arguments = stack.pop()
            flat = list(head)
            for i in rng.permutation(len(arguments)):
                flat.extend(arguments[i])
            flat.append(_CLOSE_ID)
            stack[-1].append(flat)
        else:
            stack[-1].append([token])
    if len(stack) != 1:
        raise ValueError(f"Unbalanced ListOps expression: {_clip(decode(token_ids))}")
    return np.asarray([t for item in stack[0] for t in item], dtype=np.int32)


def bucket_bounds(max_length: int = MAX_LENGTH, step: int = 128) -> list[int]:
    """`spectralmix.data.batches.bucket_bounds`, up to ListOps's longest length by default."""
    return batches.bucket_bounds(max_length, step)


def bucketed_dataset(
    data: ListOps,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    start_epoch: int = 0,
    step: int = 128,
    multiple_of: int = 1,
    augment: bool = False,
):
    """Length-bucketed `(token_ids, labels)` batches as a `keras.utils.PyDataset`, which
    `fit`, `evaluate` and `predict` accept on every backend (`spectralmix.data.batches.dataset`).

    With `shuffle`, epoch `e` uses the batch plan seeded by `seed + e` (reshuffled in
    `on_epoch_end`), so a run resumed at `start_epoch` sees the same batches as an
    uninterrupted one. `multiple_of`: see `spectralmix.data.batches.make_batches`. With
    `augment`, every example's arguments are reordered (`permute_arguments`), seeded by
    `(seed, epoch, batch index)`.
    """
    return batches.dataset(
        data,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        start_epoch=start_epoch,
        step=step,
        max_length=MAX_LENGTH,
        multiple_of=multiple_of,
        augment=permute_arguments if augment else None,
    )


def iter_batches(data: ListOps, batch_size: int, step: int = 128) -> Iterator[tuple]:
    """Bucketed `(token_ids, labels)` numpy batches in bucket order (for evaluation loops)."""
    return batches.iter_batches(data, batch_size, step, max_length=MAX_LENGTH)
