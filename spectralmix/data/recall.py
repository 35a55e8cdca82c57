"""Multi-query associative recall (MQAR): a seeded generator of in-context lookup sequences.

After Arora et al. 2023, "Zoology: Measuring and Improving Recall in Efficient Language
Models" (the synthetic task the Hyena and Based papers use to probe in-context recall). A
sequence opens with `num_pairs` key-value pairs, `k₁ v₁ k₂ v₂ …`; later positions hold queries,
each a key of the pairs, among blank tokens. At a query's position the model must output the
value that key was paired with: it has to look the key up in its context, which a fixed
global filter cannot do without data-dependent gating.

Token ids (vocabulary `vocabulary_size`):

- `PAD = 0`, never generated (left free for padding masks, as elsewhere in spectralmix);
- `BLANK = 1` fills the positions between queries;
- keys are `2 … 2 + K − 1` and values `2 + K … vocabulary_size − 1`, with
  `K = (vocabulary_size − 2) // 2`, so a key and a value are never the same token.

Each sequence draws `num_pairs` distinct keys and `num_pairs` distinct values uniformly
(Zoology draws without replacement too), pairs them in order, and queries `num_queries`
distinct keys of its pairs (all of them by default) in a random order at positions drawn
uniformly from `2 · num_pairs … length − 1`.

Differences from Zoology, on purpose:

- Targets sit **at the query's position** and the answer is not in the input, so a
  bidirectional mixer can take the task too without seeing the answer. Zoology trains a
  causal model to predict the next token, with the answer written after the query in the
  input; at the query's position the two ask the same thing.
- Query positions are uniform over the tail; Zoology draws the gaps between queries from a
  power law (`alpha = 0.01`), which puts more queries near the pairs.

Examples:
    >>> data = generate(2, length=12, num_pairs=2, vocabulary_size=10, seed=0)
    >>> data.tokens.shape, data.targets.shape
    ((2, 12), (2, 12))
    >>> bool(all(answers_are_in_context(data)))
    True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spectralmix import validation

#: Padding, never generated.
PAD = 0
#: The filler between queries.
BLANK = 1
#: The target of every position that is not a query (Keras's `ignore_class`).
IGNORE = -1
#: Token ids below the keys.
FIRST_KEY = 2


class Recall(NamedTuple):
    """`tokens` `(n, length)` int32 and `targets` `(n, length)` int32: at a query's
    position the value paired with its key, `IGNORE` everywhere else."""

    tokens: np.ndarray
    targets: np.ndarray


def key_and_value_ranges(vocabulary_size: int) -> tuple[range, range]:
    """The key ids and the value ids of a vocabulary of `vocabulary_size` tokens."""
    vocabulary_size = validation.integer("vocabulary_size", vocabulary_size, 4)
    keys = (vocabulary_size - FIRST_KEY) // 2
    return range(FIRST_KEY, FIRST_KEY + keys), range(FIRST_KEY + keys, vocabulary_size)


def generate(
    num_examples: int,
    *,
    length: int,
    num_pairs: int,
    vocabulary_size: int,
    num_queries: int | None = None,
    seed: int = 0,
) -> Recall:
    """`num_examples` MQAR sequences of `length` tokens (see the module docstring).

    Raises:
        ValueError: naming the argument and its value, when there are more pairs than keys or
            values in the vocabulary, more queries than pairs, or the pairs and queries do
            not fit in `length`.
    """
    num_examples = validation.positive_int("num_examples", num_examples)
    length = validation.positive_int("length", length)
    num_pairs = validation.positive_int("num_pairs", num_pairs)
    keys, values = key_and_value_ranges(vocabulary_size)
    num_queries = num_pairs if num_queries is None else num_queries
    num_queries = validation.positive_int("num_queries", num_queries)
    if num_pairs > min(len(keys), len(values)):
        raise ValueError(
            f"num_pairs must be at most the {min(len(keys), len(values))} keys of a vocabulary "
            f"of {vocabulary_size}. Received: num_pairs={num_pairs}"
        )
    if num_queries > num_pairs:
        raise ValueError(
            f"num_queries must be at most num_pairs ({num_pairs}). "
            f"Received: num_queries={num_queries}"
        )
    if 2 * num_pairs + num_queries > length:
        raise ValueError(
            f"length must hold {num_pairs} pairs and {num_queries} queries "
            f"(at least {2 * num_pairs + num_queries} tokens). Received: length={length}"
        )
    rng = np.random.default_rng(seed)
    rows = np.arange(num_examples)[:, None]
    # Distinct keys and values per row: the first `num_pairs` of a random permutation.
    pair_keys = keys.start + _distinct(rng, num_examples, len(keys), num_pairs)
    pair_values = values.start + _distinct(rng, num_examples, len(values), num_pairs)
    tokens = np.full((num_examples, length), BLANK, np.int32)
    tokens[:, 0 : 2 * num_pairs : 2] = pair_keys
    tokens[:, 1 : 2 * num_pairs : 2] = pair_values
    targets = np.full((num_examples, length), IGNORE, np.int32)
    asked = _distinct(rng, num_examples, num_pairs, num_queries)  # which pairs, in order
    tail = length - 2 * num_pairs
    positions = 2 * num_pairs + _distinct(rng, num_examples, tail, num_queries)
    tokens[rows, positions] = pair_keys[rows, asked]
    targets[rows, positions] = pair_values[rows, asked]
    return Recall(tokens, targets)


def _distinct(rng: np.random.Generator, rows: int, population: int, count: int) -> np.ndarray:
    """`(rows, count)` distinct integers of `0 … population − 1` per row, uniformly."""
    if population > 16 * count:  # long tails: a draw per row, without sorting the tail
        return np.stack([rng.choice(population, count, replace=False) for _ in range(rows)])
    return np.argsort(rng.random((rows, population)), axis=1)[:, :count]


def answers_are_in_context(data: Recall) -> np.ndarray:
    """Per sequence, whether every query's target is the value that its key was paired with
    earlier in the sequence (read back from the tokens alone, independently of `generate`)."""
    ok = np.ones(len(data.tokens), bool)
    for i, (tokens, targets) in enumerate(zip(data.tokens, data.targets, strict=True)):
        for position in np.flatnonzero(targets != IGNORE):
            key = tokens[position]
            earlier = np.flatnonzero(tokens[: position - 1] == key)
            earlier = earlier[earlier % 2 == 0]  # a key's place in the pairs
            paired = {int(tokens[j + 1]) for j in earlier if j + 1 < position}
            ok[i] &= paired == {int(targets[position])}
    return ok
