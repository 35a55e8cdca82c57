"""HyenaFilter, Hyena's implicit long filter: against the float64 oracle
(`reference.hyena_filter`), hand-computed windows and features, any positions, serialization."""

import math

import keras
import numpy as np
import pytest

from spectralmix import reference as R
from spectralmix.layers import HyenaFilter
from tests.helpers import assert_close, roundtrip, to_numpy, weights_by_name

OPTIONS = ("modulate", "fast_decay_pct", "slow_decay_pct", "target", "shift", "normalized")


def _built(rng, channels=6, max_length=16, **kwargs):
    layer = HyenaFilter(channels, max_length, filter_order=8, **kwargs)
    layer.build((None,))
    for v in layer.weights:  # move every weight off its initial value
        v.assign(to_numpy(v) + 0.3 * rng.standard_normal(v.shape).astype("float32"))
    return layer


def oracle_weights(named, prefix, num_inner_mlps):
    """`reference.hyena_filter`'s weights from a layer's named weights under `prefix`."""
    dense = [f"{prefix}dense_{i}" for i in range(1 + num_inner_mlps)]
    return {
        "sine_frequency": named[f"{prefix}sine_frequency"],
        "kernels": [named[f"{d}/kernel"] for d in dense],
        "biases": [named[f"{d}/bias"] for d in dense],
        "output_kernel": named[f"{prefix}output_dense/kernel"],
    }


def _oracle(layer, length):
    weights = oracle_weights(weights_by_name(layer), "", layer.num_inner_mlps)
    options = {k: getattr(layer, k) for k in OPTIONS}
    return R.hyena_filter(length, weights, max_sequence_length=layer.max_sequence_length, **options)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"emb_dim": 5, "num_inner_mlps": 0},
        {"emb_dim": 7, "num_inner_mlps": 1, "shift": 0.25, "target": 0.1},
        {"modulate": False},
        {"normalized": True, "fast_decay_pct": 0.5, "slow_decay_pct": 2.0},
    ],
)
@pytest.mark.parametrize("length", [16, 5, 23])
def test_matches_oracle(rng, kwargs, length):
    layer = _built(rng, **kwargs)
    assert_close(layer(np.arange(length)), _oracle(layer, length))


def test_any_positions_and_prefix_consistency(rng):
    """The filter is a function of the position: a shorter range is the prefix of a longer one,
    beyond `max_sequence_length` too, and any positions can be asked for."""
    layer = _built(rng)
    long = to_numpy(layer(np.arange(40)))
    np.testing.assert_array_equal(to_numpy(layer(np.arange(11))), long[:11])
    assert_close(layer(np.array([3, 39, 17])), long[[3, 39, 17]])
    count = layer.count_params()
    layer(np.arange(1000))
    assert layer.count_params() == count  # nothing grows with the length


def test_features_by_hand():
    """`z = [t, cos(1e-4·ω), -sin(1e-4·ω)]` for one band, `t = n/(N-1)`, `ω = 2πn/N`."""
    layer = HyenaFilter(2, 9, filter_order=4)
    t, z = layer.features(np.array([0, 4, 8, 12]))
    n = np.array([0.0, 4.0, 8.0, 12.0])
    assert_close(t[:, 0], n / 8)
    omega = 2 * math.pi * n / 9 * 1e-4
    assert_close(z, np.stack([n / 8, np.cos(omega), -np.sin(omega)], axis=1))
    _, z5 = HyenaFilter(2, 9, filter_order=4, emb_dim=5).features(np.array([3]))
    # Two bands, frequencies linspace(1e-4, 1, 2) = [1e-4, 1].
    angle = 2 * math.pi * 3 / 9 * np.array([1e-4, 1.0])
    assert_close(z5[0], [3 / 8, *np.cos(angle), *(-np.sin(angle))])


def _constant_network(layer, output_column_sums):
    """Zero kernels and biases π/2 with frequency 1: every sine is 1, so the FFN gives
    `sum_f K_out[f, c]` at every position and the filter is that times the window."""
    for dense in layer.dense_layers:
        dense.kernel.assign(np.zeros(dense.kernel.shape, "float32"))
        dense.bias.assign(np.full(dense.bias.shape, math.pi / 2, "float32"))
    layer.frequency.assign(np.ones(layer.frequency.shape, "float32"))
    sums = np.asarray(output_column_sums, "float32")
    kernel = np.tile(sums / layer.filter_order, (layer.filter_order, 1))
    layer.output_dense.kernel.assign(kernel)


def test_window_by_hand():
    """One channel decays at `log(target) / slow_decay_pct`: `h_n = target ** (t / slow)`;
    with two channels the second decays at the fast rate, `target ** (t / fast)`."""
    one = HyenaFilter(1, 11, filter_order=4)
    one.build((None,))
    _constant_network(one, [2.0])
    t = np.arange(15) / 10
    assert_close(one(np.arange(15))[:, 0], 2.0 * 0.01 ** (t / 1.5))
    two = HyenaFilter(2, 11, filter_order=4, target=0.5, shift=0.25)
    two.build((None,))
    _constant_network(two, [1.0, -3.0])
    expected = np.stack([0.5 ** (t / 1.5) + 0.25, -3.0 * (0.5 ** (t / 0.3) + 0.25)], axis=1)
    assert_close(two(np.arange(15)), expected)
    normalized = HyenaFilter(2, 11, filter_order=4, target=0.5, shift=0.25, normalized=True)
    normalized.build((None,))
    normalized.set_weights(two.get_weights())
    assert_close(normalized(np.arange(15)), expected / np.abs(expected).sum(1, keepdims=True))


def test_pytorch_default_initialization(rng):
    """The FFN starts as PyTorch's `nn.Linear` (the authors' code): `U(±1/√fan_in)` for the
    kernels and biases, one frequency `sine_frequency` per unit."""
    layer = HyenaFilter(64, 32, filter_order=64, sine_frequency=3.0)
    layer.build((None,))
    np.testing.assert_array_equal(to_numpy(layer.frequency), np.full(64, 3.0, "float32"))
    for dense, fan_in in zip(layer.dense_layers, [3, 64, 64], strict=True):
        for weight in (dense.kernel, dense.bias):
            values = to_numpy(weight)
            assert np.abs(values).max() <= 1 / math.sqrt(fan_in)
            assert np.abs(values).max() > 0.8 / math.sqrt(fan_in)  # uses the range
    glorot = HyenaFilter(4, 8, filter_order=8, kernel_initializer="zeros", bias_initializer="ones")
    glorot.build((None,))
    assert np.all(to_numpy(glorot.dense_layers[0].kernel) == 0)
    assert np.all(to_numpy(glorot.dense_layers[1].bias) == 1)


def test_config_and_keras_round_trip(rng, tmp_path):
    layer = HyenaFilter(
        3, 12, filter_order=8, emb_dim=5, num_inner_mlps=1, shift=0.5, normalized=True,
        kernel_initializer="he_normal",
    )  # fmt: skip
    positions = keras.Input((), dtype="int32")
    model = keras.Model(positions, layer(positions))
    for v in model.weights:
        v.assign(to_numpy(v) + 0.3 * rng.standard_normal(v.shape).astype("float32"))
    config = layer.get_config()
    assert HyenaFilter.from_config(config).get_config() == config
    assert config["bias_initializer"] is None  # PyTorch's default, chosen at build
    n = np.arange(20, dtype="int32")
    np.testing.assert_array_equal(to_numpy(roundtrip(model, tmp_path)(n)), to_numpy(model(n)))


def test_trainable_weights():
    layer = HyenaFilter(5, 16, filter_order=8, num_inner_mlps=2)
    layer.build((None,))
    paths = [v.path.split("/", 1)[1] for v in layer.trainable_weights]
    assert paths == [
        "sine_frequency",
        "dense_0/kernel",
        "dense_0/bias",
        "dense_1/kernel",
        "dense_1/bias",
        "dense_2/kernel",
        "dense_2/bias",
        "output_dense/kernel",
    ]
    assert layer.count_params() == 8 + (3 * 8 + 8) + 2 * (8 * 8 + 8) + 8 * 5


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"channels": 0}, ValueError, "channels=0"),
        ({"max_sequence_length": None}, ValueError, "max_sequence_length=None"),
        ({"filter_order": 2.0}, ValueError, "filter_order=2.0"),
        ({"emb_dim": 4}, ValueError, "emb_dim=4"),
        ({"emb_dim": 1}, ValueError, "emb_dim=1"),
        ({"num_inner_mlps": -1}, ValueError, "num_inner_mlps=-1"),
        ({"num_inner_mlps": 1.5}, TypeError, "num_inner_mlps=1.5"),
        ({"sine_frequency": 0}, ValueError, "sine_frequency=0"),
        ({"modulate": 1}, TypeError, "modulate=1"),
        ({"fast_decay_pct": -0.3}, ValueError, "fast_decay_pct=-0.3"),
        ({"slow_decay_pct": "1.5"}, ValueError, "slow_decay_pct='1.5'"),
        ({"target": 1.0}, ValueError, "target=1.0"),
        ({"target": 0}, ValueError, "target=0"),
        ({"shift": float("nan")}, ValueError, "shift=nan"),
        ({"normalized": None}, TypeError, "normalized=None"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"channels": 4, "max_sequence_length": 8, **kwargs}
    with pytest.raises(error, match=match):
        HyenaFilter(**arguments)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_against_float32(rng, policy):
    """On its own under a mixed policy the filter computes in the compute dtype with float32
    weights, and stays within that dtype's tolerance of the float32 filter."""
    exact = _built(rng)
    mixed = HyenaFilter(6, 16, filter_order=8, dtype=policy)
    mixed.build((None,))
    for source, target in zip(exact.weights, mixed.weights, strict=True):
        assert target.dtype == "float32", target.path
        target.assign(source)
    y = mixed(np.arange(16))
    assert keras.backend.standardize_dtype(y.dtype) == policy.removeprefix("mixed_")
    expected = to_numpy(exact(np.arange(16)))
    assert_close(y, expected, policy, scale=True)
    assert np.abs(expected).max() > 0.1  # a filter of substance, not zeros
