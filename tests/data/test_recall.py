"""spectralmix.data.recall: the MQAR generator's layout, statistics and arguments."""

import numpy as np
import pytest

from spectralmix.data import recall


def test_a_hand_checked_example():
    data = recall.generate(1, length=12, num_pairs=2, vocabulary_size=10, seed=0)
    # Vocabulary 10: keys 2..5, values 6..9. Read by hand: pairs (5 → 8), (4 → 9), then key 5
    # at position 5 (answer 8) and key 4 at position 7 (answer 9), blanks elsewhere.
    np.testing.assert_array_equal(data.tokens[0], [5, 8, 4, 9, 1, 5, 1, 4, 1, 1, 1, 1])
    ignore = recall.IGNORE
    expected = [ignore] * 12
    expected[5], expected[7] = 8, 9
    np.testing.assert_array_equal(data.targets[0], expected)


@pytest.mark.parametrize(
    ("length", "num_pairs", "vocabulary_size", "num_queries"),
    [(64, 8, 40, None), (256, 16, 64, 5), (4096, 32, 512, None), (65_536, 64, 8192, 64)],
)
def test_every_answer_is_the_value_paired_earlier_with_the_key(
    length, num_pairs, vocabulary_size, num_queries
):
    data = recall.generate(
        16,
        length=length,
        num_pairs=num_pairs,
        vocabulary_size=vocabulary_size,
        num_queries=num_queries,
        seed=3,
    )
    assert data.tokens.shape == data.targets.shape == (16, length)
    assert data.tokens.dtype == data.targets.dtype == np.int32
    assert recall.answers_are_in_context(data).all()
    asked = (data.targets != recall.IGNORE).sum(axis=1)
    np.testing.assert_array_equal(asked, num_queries or num_pairs)
    assert not (data.tokens == recall.PAD).any()
    keys, values = recall.key_and_value_ranges(vocabulary_size)
    pairs = data.tokens[:, : 2 * num_pairs]
    assert np.isin(pairs[:, 0::2], keys).all()
    assert np.isin(pairs[:, 1::2], values).all()
    for row in pairs:  # distinct keys and distinct values within a sequence
        assert len(set(row[0::2])) == len(set(row[1::2])) == num_pairs
    tail = data.tokens[:, 2 * num_pairs :]
    queried = data.targets[:, 2 * num_pairs :] != recall.IGNORE
    assert (tail[~queried] == recall.BLANK).all()
    assert np.isin(tail[queried], keys).all()


def test_the_checker_catches_a_wrong_answer():
    data = recall.generate(4, length=32, num_pairs=4, vocabulary_size=20, seed=1)
    targets = data.targets.copy()
    row, position = 2, int(np.flatnonzero(targets[2] != recall.IGNORE)[0])
    _, values = recall.key_and_value_ranges(20)
    targets[row, position] = values.start + (targets[row, position] - values.start + 1) % len(
        values
    )
    checked = recall.answers_are_in_context(recall.Recall(data.tokens, targets))
    np.testing.assert_array_equal(checked, [True, True, False, True])


def test_keys_values_and_query_positions_are_uniform():
    # 4,000 sequences: each count's expectation is in the hundreds, so a bound of 5 standard
    # deviations of a binomial count fails a fair generator with probability under 1e-5.
    n, length, num_pairs, vocabulary_size = 4000, 48, 4, 22
    data = recall.generate(
        n, length=length, num_pairs=num_pairs, vocabulary_size=vocabulary_size, seed=7
    )
    keys, values = recall.key_and_value_ranges(vocabulary_size)
    pairs = data.tokens[:, : 2 * num_pairs]
    queried = data.targets != recall.IGNORE
    positions = np.nonzero(queried)[1] - 2 * num_pairs
    for observed, support in [
        (pairs[:, 0::2].ravel(), np.asarray(keys)),
        (pairs[:, 1::2].ravel(), np.asarray(values)),
        (positions, np.arange(length - 2 * num_pairs)),
    ]:
        counts = np.array([(observed == v).sum() for v in support])
        p = 1 / len(support)
        expected, sd = len(observed) * p, np.sqrt(len(observed) * p * (1 - p))
        assert np.abs(counts - expected).max() < 5 * sd, (counts, expected)
    # Which pair is asked first: uniform over the pairs too.
    first = [
        np.flatnonzero(row[: 2 * num_pairs : 2] == tok[q][0])[0]
        for row, tok, q in zip(pairs, data.tokens, queried, strict=True)
    ]
    counts = np.bincount(first, minlength=num_pairs)
    assert np.abs(counts - n / num_pairs).max() < 5 * np.sqrt(n * 0.25 * 0.75)


def test_the_same_seed_gives_the_same_sequences():
    a = recall.generate(3, length=40, num_pairs=5, vocabulary_size=30, seed=11)
    b = recall.generate(3, length=40, num_pairs=5, vocabulary_size=30, seed=11)
    c = recall.generate(3, length=40, num_pairs=5, vocabulary_size=30, seed=12)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens, c.tokens)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_pairs": 5, "vocabulary_size": 10}, "num_pairs=5"),
        ({"num_queries": 4}, "num_queries=4"),
        ({"length": 8}, "length=8"),
        ({"vocabulary_size": 3}, "vocabulary_size"),
        ({"num_pairs": 0}, "num_pairs"),
        ({"length": 2.5}, "length"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    arguments = {"length": 16, "num_pairs": 3, "vocabulary_size": 20, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        recall.generate(2, **arguments)
