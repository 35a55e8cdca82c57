import ast
import inspect

import numpy as np
import pytest

from spectralmix.data import batches


def test_generic_batching_imports_no_dataset():
    tree = ast.parse(inspect.getsource(batches))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import)]
    imported |= {alias.name for node in imports for alias in node.names}
    assert "spectralmix.validation" in imported
    assert not [name for name in imported if name.startswith("spectralmix.data")]


def test_buckets_cover_every_example_once_with_little_padding():
    lengths = np.random.default_rng(0).integers(501, 2000, size=1000)
    bounds = batches.bucket_bounds(2000)
    assert bounds[0] == 128
    assert bounds[-1] == 2000
    assert len(bounds) == 16
    plan = batches.make_batches(lengths, 32, bounds=bounds, shuffle=True, seed=3)
    members = np.concatenate([m for _, m in plan])
    np.testing.assert_array_equal(np.sort(members), np.arange(1000))
    for bound, m in plan:
        assert len(m) <= 32
        assert np.all(lengths[m] <= bound)
        assert np.all(lengths[m] > bound - 128)
    again = batches.make_batches(lengths, 32, bounds=bounds, shuffle=True, seed=3)
    other = batches.make_batches(lengths, 32, bounds=bounds, shuffle=True, seed=4)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(plan, again, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(plan, other, strict=True))


def test_pad_refuses_to_truncate():
    with pytest.raises(ValueError, match="length=3"):
        batches.pad([np.arange(5)], 3)


@pytest.mark.parametrize("multiple_of", [2, 4])
def test_batches_split_evenly_over_devices_without_dropping_examples(multiple_of):
    lengths = np.random.default_rng(2).integers(1, 700, size=101)
    bounds = batches.bucket_bounds(700)
    plan = batches.make_batches(lengths, 8, bounds=bounds, shuffle=True, multiple_of=multiple_of)
    assert all(len(m) % multiple_of == 0 and len(m) <= 8 for _, m in plan)
    members = np.concatenate([m for _, m in plan])
    assert set(members.tolist()) == set(range(101))  # every example is used
    assert len(members) - 101 < multiple_of  # at most multiple_of - 1 are repeated
    assert all(np.all(lengths[m] <= bound) for bound, m in plan)
    with pytest.raises(ValueError, match="batch_size=6, multiple_of=4"):
        batches.make_batches(lengths, 6, multiple_of=4)


@pytest.mark.parametrize(("multiple", "extra", "expected"), [(8, 0, 16), (8, 1, 15), (1, 1, 13)])
def test_dataset_pads_token_batches_to_split_over_devices(multiple, extra, expected):
    data = batches.SequenceData(
        [np.arange(1, n + 1, dtype=np.int32) for n in (13, 9, 11)], np.zeros(3, np.int32)
    )
    loader = batches.dataset(data, 3, step=13, length_multiple=multiple, extra_tokens=extra)
    ((inputs, _),) = [loader[i] for i in range(len(loader))]
    assert inputs.shape == (3, expected)
    np.testing.assert_array_equal(inputs[0, :13], np.arange(1, 14))
    assert (inputs[0, 13:] == 0).all()
    assert (expected + extra) % multiple == 0


def test_dataset_refuses_a_bad_length_multiple():
    data = batches.SequenceData([np.ones(3, np.int32)], np.zeros(1, np.int32))
    with pytest.raises(ValueError, match="length_multiple=0"):
        batches.dataset(data, 1, length_multiple=0)


def _epoch_plans(seed, start_epoch, epochs):
    data = batches.ArrayData(np.arange(64, dtype=np.int32)[:, None], np.zeros(64, np.int32))
    loader = batches.dataset(data, 8, shuffle=True, seed=seed, start_epoch=start_epoch)
    plans = []
    for _ in range(epochs):
        plans.append([loader[i][0][:, 0].tolist() for i in range(len(loader))])
        loader.on_epoch_end()
    return plans


def test_a_resumed_dataset_repeats_the_epochs_and_seeds_are_independent():
    whole = _epoch_plans(seed=0, start_epoch=0, epochs=3)
    assert _epoch_plans(seed=0, start_epoch=1, epochs=2) == whole[1:]
    assert whole[0] != whole[1]
    # Seed 1's first epoch is not seed 0's second (a plan seeded by seed + epoch made them so).
    assert _epoch_plans(seed=1, start_epoch=0, epochs=1)[0] not in whole
