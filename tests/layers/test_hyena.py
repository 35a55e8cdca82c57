"""HyenaOperator, the token mixer "hyena": against the float64 oracle (`reference.hyena`, whose
long convolution is the explicit O(N²) sum), hand-computed impulse responses, finite
differences, causality, masks, mixed precision, serialization, the cache API, blocks, models,
FLOPs and layouts."""

import importlib.util
import math
import re

import keras
import numpy as np
import pytest

from spectralmix import flops
from spectralmix import reference as R
from spectralmix.layers import HyenaOperator, MetaFormerBlock
from spectralmix.models import FFTNetBackbone
from spectralmix.registry import get_token_mixer, is_causal, mixer_arguments
from tests.helpers import (
    BACKEND,
    assert_close,
    finite_difference_grads,
    run_layer_test,
    to_numpy,
    value_and_grads,
    weights_by_name,
)
from tests.layers.test_hyena_filter import OPTIONS, oracle_weights
from tests.tolerances import TOLERANCES


def _built(rng, channels=4, max_length=16, **kwargs):
    kwargs.setdefault("filter_order", 8)
    layer = HyenaOperator(max_sequence_length=max_length, **kwargs)
    layer.build((None, None, channels))
    for v in layer.weights:  # move every weight off its initial value
        v.assign(to_numpy(v) + 0.3 * rng.standard_normal(v.shape).astype("float32"))
    return layer


def _oracle_weights(layer, named=None):
    named = named if named is not None else weights_by_name(layer)
    weights = {
        "in_kernel": named["in_projection/kernel"],
        "in_bias": named["in_projection/bias"],
        "short_kernel": named["short_conv_kernel"],
        "short_bias": named["short_conv_bias"],
        "skip": named["skip"],
        "out_kernel": named["out_projection/kernel"],
        "out_bias": named["out_projection/bias"],
        "filter": oracle_weights(named, "implicit_filter/", layer.num_inner_mlps),
    }
    if not layer.causal:
        weights["reverse_filter"] = oracle_weights(named, "reverse_filter/", layer.num_inner_mlps)
    return weights


def _oracle(layer, x, mask=None, named=None):
    return R.hyena(
        np.asarray(x, np.float64),
        _oracle_weights(layer, named),
        order=layer.order,
        max_sequence_length=layer.max_sequence_length,
        causal=layer.causal,
        mask=mask,
        **{k: getattr(layer, k) for k in OPTIONS},
    )


# --- the math ---------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("length", [16, 7, 13, 24])
def test_matches_oracle_at_any_length(rng, causal, length):
    """At `max_sequence_length` (16), shorter (odd lengths too) and longer."""
    layer = _built(rng, causal=causal)
    x = rng.standard_normal((2, length, 4)).astype("float32")
    assert_close(layer(x), _oracle(layer, x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"order": 3},
        {"order": 4, "short_filter_order": 1},
        {"short_filter_order": 5, "emb_dim": 5, "num_inner_mlps": 0},
        {"normalized": True, "shift": 0.2, "target": 0.1},
        {"modulate": False, "causal": False, "order": 3},
    ],
)
def test_matches_oracle_with_other_arguments(rng, kwargs):
    layer = _built(rng, channels=3, max_length=12, **kwargs)
    x = rng.standard_normal((2, 9, 3)).astype("float32")
    assert_close(layer(x), _oracle(layer, x))


def _impulse_layer(causal, max_length=9):
    """One channel, `x_0 = x_1 = 1`, `v = x`, an identity short convolution, skip 0.5, identity
    output: `y = h * x + 0.5·x`. Every filter sine is 1 (zero kernels, biases π/2), so the
    filter is its output column sum times the window: `h_n = target ** (t_n / slow_decay_pct)`
    (one channel decays at the slow rate) and the reverse filter `g_n = 2 h_n`."""
    layer = HyenaOperator(max_sequence_length=max_length, causal=causal, filter_order=4)
    layer.build((None, None, 1))
    layer.in_projection.kernel.assign(np.array([[0.0, 0.0, 1.0]], "float32"))
    layer.in_projection.bias.assign(np.array([1.0, 1.0, 0.0], "float32"))
    layer.short_conv_kernel.assign(np.array([[0, 0, 0], [0, 0, 0], [1, 1, 1]], "float32"))
    layer.short_conv_bias.assign(np.zeros(3, "float32"))
    layer.skip.assign(np.array([0.5], "float32"))
    layer.out_projection.kernel.assign(np.ones((1, 1), "float32"))
    layer.out_projection.bias.assign(np.zeros(1, "float32"))
    filters = [(layer.implicit_filter, 1.0)]
    if not causal:
        filters.append((layer.reverse_filter, 2.0))
    for hyena_filter, scale in filters:
        for dense in hyena_filter.dense_layers:
            dense.kernel.assign(np.zeros(dense.kernel.shape, "float32"))
            dense.bias.assign(np.full(dense.bias.shape, math.pi / 2, "float32"))
        hyena_filter.output_dense.kernel.assign(np.full((4, 1), scale / 4, "float32"))
    return layer


@pytest.mark.parametrize("causal", [True, False])
def test_impulse_responses_by_hand(causal):
    """An impulse at token 3 of 9: the causal output is the window from there on and nothing
    before, `y_t = 0.01 ** ((t - 3) / 8 / 1.5)` (+ the skip 0.5 at t = 3); no wrap-around of a
    circular convolution reaches t < 3. Bidirectional: before it, the reverse filter one token
    shifted, `y_t = 2 · 0.01 ** ((3 - t - 1) / 8 / 1.5)`."""
    layer = _impulse_layer(causal)
    x = np.zeros((1, 9, 1), "float32")
    x[0, 3, 0] = 1.0
    window = 0.01 ** (np.arange(9) / 8 / 1.5)
    expected = np.zeros(9)
    expected[3:] = window[:6]
    expected[3] += 0.5
    if not causal:
        expected[:3] = 2 * window[[2, 1, 0]]
    assert_close(layer(x)[0, :, 0], expected)
    # Longer than max_sequence_length: the window goes on decaying, t = n / 8 past 1.
    long = np.zeros((1, 20, 1), "float32")
    long[0, 0, 0] = 1.0
    beyond = 0.01 ** (np.arange(20) / 8 / 1.5)
    beyond[0] += 0.5
    assert_close(layer(long)[0, :, 0], beyond)


def test_the_oracle_is_linear_not_circular(rng):
    """`reference.long_convolution` against a direct loop, and unlike the circular convolution
    of the same length (which wraps the late filter taps onto the early tokens)."""
    u = rng.standard_normal((1, 6, 2))
    h = rng.standard_normal((6, 2))
    direct = np.zeros_like(u)
    for t in range(6):
        for s in range(t + 1):
            direct[0, t] += h[t - s] * u[0, s]
    np.testing.assert_allclose(R.long_convolution(u, h), direct, atol=TOLERANCES["float64"])
    circular = np.fft.irfft(np.fft.rfft(u, axis=1) * np.fft.rfft(h, axis=0), n=6, axis=1)
    assert np.abs(circular - direct).max() > 0.1
    g = rng.standard_normal((6, 2))
    both = direct.copy()
    for t in range(6):
        for s in range(t + 1, 6):
            both[0, t] += g[s - t - 1] * u[0, s]
    np.testing.assert_allclose(R.long_convolution(u, h, g), both, atol=TOLERANCES["float64"])


LIBRARIES = ["numpy"] + [m for m in ("torch", "jax") if importlib.util.find_spec(m)]


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_oracle_runs_on_every_array_library(rng, library):
    layer = _built(rng, channels=3, max_length=8, order=3, causal=False, normalized=True)
    x = rng.standard_normal((2, 7, 3))
    mask = np.ones((2, 7), bool)
    mask[1, 4:] = False
    expected = _oracle(layer, x, mask)
    if library == "numpy":
        convert, back = np.asarray, np.asarray
    elif library == "torch":
        import torch

        convert, back = torch.asarray, lambda t: t.numpy()
    else:
        import jax.numpy as jnp

        convert, back = jnp.asarray, np.asarray

    def tensors(tree):
        if isinstance(tree, dict):
            return {k: tensors(v) for k, v in tree.items()}
        if isinstance(tree, list):
            return [tensors(v) for v in tree]
        return convert(tree)

    options = {k: getattr(layer, k) for k in OPTIONS}
    actual = R.hyena(
        convert(x), tensors(_oracle_weights(layer)), order=3, max_sequence_length=8,
        causal=False, mask=convert(mask), **options,
    )  # fmt: skip
    # JAX runs in float32 unless x64 is enabled; the other libraries keep float64.
    kind = "float32_op" if library == "jax" else "float64"
    assert_close(back(actual), expected, kind, scale=True)


@pytest.mark.parametrize("causal", [True, False])
def test_gradients_match_finite_differences(rng, causal):
    layer = _built(rng, channels=2, max_length=5, causal=causal, filter_order=3, num_inner_mlps=1)
    x = rng.standard_normal((1, 5, 2))
    cotangent = rng.standard_normal((1, 5, 2))
    names = [v.path[len(layer.path) + 1 :] for v in layer.trainable_weights]
    weights = [np.asarray(to_numpy(v), np.float64) for v in layer.trainable_weights]

    def oracle(x, *ws):
        return _oracle(layer, x, named=dict(zip(names, ws, strict=True)))

    expected = finite_difference_grads(oracle, [x, *weights], cotangent)
    y, gx, gw = value_and_grads(layer, x, cotangent)
    assert_close(y, oracle(x, *weights))
    for name, actual, want in zip(["x", *names], [gx, *gw], expected, strict=True):
        assert np.abs(want).max() > 0, name  # every weight acts
        assert_close(actual, want, "float32_grad", scale=True)


# --- causality, any length, masks ------------------------------------------------------------


def test_causal_outputs_never_depend_on_later_tokens(rng):
    """Changing the tokens after `t` moves no causal output at or before `t` (beyond float32
    round-off of the FFT); the bidirectional layer's earlier outputs move."""
    causal = _built(rng)
    bidirectional = _built(rng, causal=False)
    x = rng.standard_normal((2, 16, 4)).astype("float32")
    for t in (0, 5, 14):
        later = x.copy()
        later[:, t + 1 :] = rng.standard_normal(later[:, t + 1 :].shape)
        y, moved = to_numpy(causal(x)), to_numpy(causal(later))
        scale = np.abs(y).max()
        assert np.abs(moved[:, : t + 1] - y[:, : t + 1]).max() <= TOLERANCES["causality"] * scale
        assert np.abs(moved[:, t + 1 :] - y[:, t + 1 :]).max() > 0.1
        y, moved = to_numpy(bidirectional(x)), to_numpy(bidirectional(later))
        assert np.abs(moved[:, : t + 1] - y[:, : t + 1]).max() > 0.01 * np.abs(y).max()


def test_causal_outputs_are_prefix_consistent(rng):
    """The filter at position n does not depend on the input's length, so a causal layer's
    output on a prefix is the prefix of its output, within and beyond max_sequence_length."""
    layer = _built(rng)
    x = rng.standard_normal((2, 40, 4)).astype("float32")
    full = to_numpy(layer(x))
    for length in (1, 9, 16, 25):
        assert_close(layer(x[:, :length]), full[:, :length], scale=True)


@pytest.mark.parametrize("causal", [True, False])
def test_mask_padded_content_never_reaches_real_outputs(rng, causal):
    layer = _built(rng, causal=causal)
    x = rng.standard_normal((3, 12, 4)).astype("float32")
    mask = np.ones((3, 12), bool)
    mask[0, 8:] = False
    mask[1, 3:] = False
    mask[2, [2, 5, 6]] = False  # holes, not only a padded tail
    noisy = x.copy()
    noisy[~mask] = 1e3 * rng.standard_normal((int((~mask).sum()), 4))
    y = to_numpy(layer(x, mask=mask))
    np.testing.assert_array_equal(to_numpy(layer(noisy, mask=mask)), y)
    np.testing.assert_array_equal(y[~mask], 0.0)
    assert_close(y, _oracle(layer, x, mask))
    # The right-padded rows see exactly the unpadded sequences (causal: no later token).
    if causal:
        assert_close(y[1, :3], to_numpy(layer(x[1:2, :3]))[0], scale=True)


def test_keras_mask_flows_from_embedding():
    ids = np.array([[3, 1, 4, 1, 5, 0, 0, 0], [2, 7, 0, 0, 0, 0, 0, 0]])
    inputs = keras.Input((8,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    model = keras.Model(inputs, HyenaOperator(filter_order=8, name="mixer")(embedded))
    embedding = to_numpy(model.layers[1](ids))
    expected = to_numpy(model.get_layer("mixer")(embedding, mask=ids != 0))
    np.testing.assert_allclose(to_numpy(model(ids)), expected, rtol=1e-6, atol=1e-6)
    assert (to_numpy(model(ids))[ids == 0] == 0).all()


# --- the layer contract -----------------------------------------------------------------------


@pytest.mark.parametrize(("causal", "trainable"), [(True, 15), (False, 23)])
def test_layer_contract(tmp_path, causal, trainable):
    run_layer_test(
        lambda **kw: HyenaOperator(causal=causal, filter_order=8, **kw),
        (16, 8),
        tmp_path,
        expected_trainable=trainable,
    )


def test_weights_and_island_stay_float32_under_mixed_precision(rng):
    layer = HyenaOperator(filter_order=8, causal=False, dtype="mixed_bfloat16")
    y = layer(rng.standard_normal((1, 8, 4)).astype("float32"))
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    for v in layer.weights:
        assert v.dtype == "float32", v.path
    assert layer.implicit_filter.compute_dtype == "float32"
    assert layer.reverse_filter.compute_dtype == "float32"
    assert layer.in_projection.compute_dtype == "bfloat16"


def test_config_round_trip_keeps_every_argument():
    arguments = dict(
        max_sequence_length=32, order=3, causal=False, filter_order=16, emb_dim=5,
        num_inner_mlps=1, short_filter_order=4, sine_frequency=2.0, modulate=False,
        fast_decay_pct=0.4, slow_decay_pct=1.2, target=0.05, shift=0.1, normalized=True,
        fft_impl="dft",
    )  # fmt: skip
    layer = HyenaOperator(**arguments, kernel_initializer="he_normal")
    config = layer.get_config()
    assert {k: config[k] for k in arguments} == arguments
    clone = HyenaOperator.from_config(config)
    assert clone.get_config() == config
    assert clone.causal is False
    assert HyenaOperator().max_sequence_length is None  # then the built length


def test_defaults_are_the_authors():
    """safari's HyenaOperator/HyenaFilter defaults (docs/layers.md, "Hyena")."""
    layer = HyenaOperator()
    assert (layer.order, layer.filter_order, layer.emb_dim, layer.num_inner_mlps) == (2, 64, 3, 2)
    assert (layer.short_filter_order, layer.sine_frequency, layer.modulate) == (3, 1.0, True)
    assert (layer.fast_decay_pct, layer.slow_decay_pct, layer.target) == (0.3, 1.5, 1e-2)
    assert (layer.shift, layer.normalized, layer.causal) == (0.0, False, True)


def test_max_sequence_length_defaults_to_the_built_length_and_is_saved():
    layer = HyenaOperator(filter_order=8)
    layer(np.ones((1, 10, 4), "float32"))
    assert layer.max_sequence_length == 10
    assert layer.implicit_filter.max_sequence_length == 10
    assert HyenaOperator.from_config(layer.get_config()).max_sequence_length == 10


def test_jit_compiled_call_matches_eager(rng):
    layer = _built(rng, causal=False)
    x = rng.standard_normal((2, 12, 4)).astype("float32")
    eager = to_numpy(layer(x))
    if BACKEND == "jax":
        import jax

        values = [v.value for v in layer.trainable_variables]
        compiled = jax.jit(lambda tv, xx: layer.stateless_call(tv, [], xx)[0])(values, x)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(layer, jit_compile=True)(x)
    else:
        import torch

        torch._dynamo.reset()
        compiled = torch.compile(layer)(torch.as_tensor(x)).detach()
    assert_close(compiled, eager)


def test_unknown_length_in_a_tf_graph(rng):
    if BACKEND != "tensorflow":
        pytest.skip("only TensorFlow graphs carry run-time sequence lengths")
    import tensorflow as tf

    layer = _built(rng)
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 4))])
    for length in (16, 9, 20):
        x = rng.standard_normal((2, length, 4)).astype("float32")
        assert_close(fn(x), _oracle(layer, x))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"order": 1}, ValueError, "order=1"),
        ({"order": 2.0}, TypeError, "order=2.0"),
        ({"causal": "yes"}, TypeError, "causal='yes'"),
        ({"max_sequence_length": -4}, ValueError, "max_sequence_length=-4"),
        ({"filter_order": 0}, ValueError, "filter_order=0"),
        ({"emb_dim": 4}, ValueError, "emb_dim=4"),
        ({"num_inner_mlps": -1}, ValueError, "num_inner_mlps=-1"),
        ({"short_filter_order": 0}, ValueError, "short_filter_order=0"),
        ({"sine_frequency": -1.0}, ValueError, "sine_frequency=-1.0"),
        ({"modulate": "no"}, TypeError, "modulate='no'"),
        ({"fast_decay_pct": 0}, ValueError, "fast_decay_pct=0"),
        ({"slow_decay_pct": None}, ValueError, "slow_decay_pct=None"),
        ({"target": 2}, ValueError, "target=2"),
        ({"shift": float("inf")}, ValueError, "shift=inf"),
        ({"normalized": 0}, TypeError, "normalized=0"),
        ({"kernel_initializer": "no_such_init"}, ValueError, "no_such_init"),
        ({"fft_impl": "rfft"}, ValueError, "fft_impl='rfft'"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        HyenaOperator(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"rank 3.*input_shape=\(2, 8\)"):
        HyenaOperator()(np.ones((2, 8), "float32"))
    with pytest.raises(ValueError, match="int32"):
        HyenaOperator(filter_order=8)(np.ones((1, 8, 4), "int32"))
    with pytest.raises(ValueError, match="max_sequence_length"):
        HyenaOperator()(keras.Input((None, 4)))


# --- generation: the cache API ----------------------------------------------------------------


def _generate(layer, x, prompt, max_length, index=int):
    """A prompt of `prompt` tokens, then one token per step: the outputs concatenated."""
    cache = layer.init_cache(x.shape[0], max_length)
    outputs, cache = layer.call_with_cache(x[:, :prompt], cache, index(0))
    pieces = [to_numpy(outputs)]
    for t in range(prompt, x.shape[1]):
        outputs, cache = layer.call_with_cache(x[:, t : t + 1], cache, index(t))
        pieces.append(to_numpy(outputs))
    return np.concatenate(pieces, axis=1)


def _index_tensor(t):
    return keras.ops.convert_to_tensor(t, "int32")


@pytest.mark.parametrize("index", [int, _index_tensor], ids=["int", "tensor"])
@pytest.mark.parametrize(("prompt", "max_length"), [(5, 12), (1, 12), (4, 20)])
def test_prompt_then_steps_equal_the_full_call(rng, index, prompt, max_length):
    layer = _built(rng, order=3)
    x = rng.standard_normal((2, 12, 4)).astype("float32")
    generated = _generate(layer, x, prompt, max_length, index)
    assert_close(generated, to_numpy(layer(x)), scale=True)
    assert_close(generated, _oracle(layer, x), scale=True)


@pytest.mark.parametrize("index", [int, _index_tensor], ids=["int", "tensor"])
def test_chunked_prefill_equals_the_full_call(rng, index):
    layer = _built(rng, short_filter_order=4)
    x = rng.standard_normal((2, 14, 4)).astype("float32")
    cache = layer.init_cache(2, 16)
    pieces = []
    for start, stop in ((0, 5), (5, 6), (6, 11), (11, 14)):
        outputs, cache = layer.call_with_cache(x[:, start:stop], cache, index(start))
        pieces.append(to_numpy(outputs))
    assert_close(np.concatenate(pieces, axis=1), to_numpy(layer(x)), scale=True)


def test_a_prompt_refreshes_the_cached_filters(rng):
    """The cache holds the filters of the weights at `init_cache`; a prompt evaluates them
    again, so weights changed in between are the ones the steps use."""
    layer = _built(rng)
    x = rng.standard_normal((1, 7, 4)).astype("float32")
    cache = layer.init_cache(1, 8)
    for v in layer.implicit_filter.weights:
        v.assign(to_numpy(v) + 0.3 * rng.standard_normal(v.shape).astype("float32"))
    outputs, cache = layer.call_with_cache(x[:, :4], cache, 0)
    pieces = [to_numpy(outputs)]
    for t in range(4, 7):
        outputs, cache = layer.call_with_cache(x[:, t : t + 1], cache, t)
        pieces.append(to_numpy(outputs))
    assert_close(np.concatenate(pieces, axis=1), to_numpy(layer(x)), scale=True)


def test_one_tap_short_convolution_and_a_reused_cache(rng):
    """`short_filter_order=1` keeps an empty window; a cache reused from position 0 again
    forgets what its window held."""
    for taps in (1, 3):
        layer = _built(rng, short_filter_order=taps)
        x = rng.standard_normal((1, 6, 4)).astype("float32")
        cache = layer.init_cache(1, 6)
        _, cache = layer.call_with_cache(x[:, :6], cache, 0)
        assert tuple(cache[0].shape) == (1, taps - 1, 12)
        again, _ = layer.call_with_cache(x[:, :3], cache, 0)
        assert_close(again, to_numpy(layer(x[:, :3])), scale=True)


def test_cache_shapes_and_dtypes():
    layer = HyenaOperator(filter_order=8, order=3, dtype="mixed_bfloat16")
    layer.build((None, 16, 4))
    cache = layer.init_cache(2, 10)
    assert isinstance(cache, tuple)
    assert len(cache) == 4
    assert tuple(cache[0].shape) == (2, 2, 16)
    assert keras.backend.standardize_dtype(cache[0].dtype) == "bfloat16"
    assert np.all(to_numpy(cache[0]) == 0)
    # The filters at the cache's positions, float32, as the full call evaluates them.
    assert keras.backend.standardize_dtype(cache[1].dtype) == "float32"
    np.testing.assert_array_equal(
        to_numpy(cache[1]), to_numpy(layer.implicit_filter(np.arange(10)))
    )
    for history in cache[2:]:
        assert tuple(history.shape) == (2, 10, 4)
        assert keras.backend.standardize_dtype(history.dtype) == "float32"
        assert np.all(to_numpy(history) == 0)
    x = np.ones((2, 3, 4), "float32")
    outputs, new_cache = layer.call_with_cache(x, cache, 0)
    assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    assert [tuple(c.shape) for c in new_cache] == [tuple(c.shape) for c in cache]
    assert [c.dtype for c in new_cache] == [c.dtype for c in cache]


def test_a_compiled_step_does_not_retrace(rng):
    layer = _built(rng)
    x = rng.standard_normal((2, 8, 4)).astype("float32")
    cache = layer.init_cache(2, 8)
    traces = []
    if BACKEND == "jax":
        import jax

        def step(tv, tokens, cache, index):
            traces.append(1)
            with keras.StatelessScope(
                state_mapping=list(zip(layer.trainable_variables, tv, strict=True))
            ):
                return layer.call_with_cache(tokens, cache, index)

        compiled = jax.jit(step)
        values = [v.value for v in layer.trainable_variables]

        def run(tokens, cache, index):
            return compiled(values, tokens, cache, index)

    elif BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function
        def run(tokens, cache, index):
            traces.append(1)
            return layer.call_with_cache(tokens, cache, index)

    else:
        pytest.skip("torch.compile is exercised by the full call; eager torch never traces")
    outputs, cache = layer.call_with_cache(x[:, :3], cache, 0)
    pieces = [to_numpy(outputs)]
    for t in range(3, 8):
        outputs, cache = run(x[:, t : t + 1], cache, _index_tensor(t))
        pieces.append(to_numpy(outputs))
    assert len(traces) == 1
    assert_close(np.concatenate(pieces, axis=1), to_numpy(layer(x)), scale=True)


def test_cache_refusals(rng):
    bidirectional = _built(rng, causal=False)
    with pytest.raises(ValueError, match="causal=True. Received: causal=False"):
        bidirectional.init_cache(1, 8)
    with pytest.raises(ValueError, match="HyenaOperator.call_with_cache.*causal=False"):
        bidirectional.call_with_cache(np.ones((1, 1, 4), "float32"), (), 0)
    with pytest.raises(ValueError, match="built first"):
        HyenaOperator().init_cache(1, 8)
    layer = _built(rng)
    cache = layer.init_cache(1, 4)
    with pytest.raises(ValueError, match="cache_index=3"):
        layer.call_with_cache(np.ones((1, 2, 4), "float32"), cache, 3)
    with pytest.raises(ValueError, match="a tuple of 3 tensors"):
        layer.call_with_cache(np.ones((1, 1, 4), "float32"), cache[:1], 0)
    with pytest.raises(ValueError, match="max_length=0"):
        layer.init_cache(1, 0)


# --- fft_impl: the DFT form (no FFT op, for export) -------------------------------------------


def _dft_twin(layer):
    """A copy of `layer` (same weights) with `fft_impl="dft"`."""
    twin = HyenaOperator.from_config({**layer.get_config(), "fft_impl": "dft"})
    twin.build((None, None, layer.channels))
    twin.set_weights(layer.get_weights())
    return twin


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("length", [16, 7, 24])
def test_dft_matches_the_oracle_and_the_fft_in_values_and_gradients(rng, causal, length):
    """At `max_sequence_length` (16), an odd shorter length and a longer one; with a mask."""
    layer = _built(rng, causal=causal)
    twin = _dft_twin(layer)
    assert twin.get_config()["fft_impl"] == "dft"
    x = rng.standard_normal((2, length, 4))
    cotangent = rng.standard_normal((2, length, 4))
    mask = np.ones((2, length), bool)
    mask[1, length // 2 :] = False
    y, gx, gw = value_and_grads(layer, x, cotangent, mask=mask)
    y_dft, gx_dft, gw_dft = value_and_grads(twin, x, cotangent, mask=mask)
    assert_close(y_dft, _oracle(layer, x, mask=mask))
    assert_close(y_dft, y)
    for got, want in zip([gx_dft, *gw_dft], [gx, *gw], strict=True):
        assert_close(got, want, "float32_grad", scale=True)


def test_dft_runs_no_fft(rng, monkeypatch):
    """The DFT form computes no FFT op at all (what ONNX and LiteRT export need)."""
    layer = _dft_twin(_built(rng, causal=False))
    x = rng.standard_normal((2, 9, 4)).astype("float32")
    expected = _oracle(layer, x)

    def no_fft(*args, **kwargs):
        raise AssertionError("an FFT op ran")

    for name in ("rfft", "irfft", "fft", "fft2"):
        monkeypatch.setattr(keras.ops, name, no_fft)
    assert_close(layer(x), expected)


def test_dft_with_an_unknown_length_in_a_tf_graph(rng):
    if BACKEND != "tensorflow":
        pytest.skip("only TensorFlow graphs carry run-time sequence lengths")
    import tensorflow as tf

    layer = _dft_twin(_built(rng, causal=False))
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 4))])
    for length in (16, 9, 20):
        x = rng.standard_normal((2, length, 4)).astype("float32")
        assert_close(fn(x), _oracle(layer, x))


def test_dft_prompt_then_steps_equal_the_full_call(rng):
    layer = _dft_twin(_built(rng))
    x = rng.standard_normal((2, 12, 4)).astype("float32")
    assert_close(_generate(layer, x, 5, 12, _index_tensor), _oracle(layer, x), scale=True)


def test_auto_runs_the_dft_up_to_the_crossover(rng, monkeypatch):
    """`"auto"` compares the long convolutions' transform length, `2N`, with the crossover."""
    from spectralmix.backends import dft

    layer = _built(rng, fft_impl="auto")
    calls = []
    original = dft.rdft_matrices
    monkeypatch.setattr(dft, "rdft_matrices", lambda *a, **k: calls.append(1) or original(*a, **k))
    monkeypatch.setitem(dft.CROSSOVER, BACKEND, 24)
    for length, used_dft in ((12, True), (13, False)):
        calls.clear()
        x = rng.standard_normal((2, length, 4)).astype("float32")
        assert_close(layer(x), _oracle(layer, x))
        assert bool(calls) == used_dft


# --- in blocks and models ---------------------------------------------------------------------


def test_registered_as_a_causal_token_mixer():
    assert get_token_mixer("hyena") is HyenaOperator
    assert is_causal("hyena")
    assert HyenaOperator(causal=False).causal is False  # the instance says which it is
    arguments = mixer_arguments("hyena", {"order": 3}, num_heads=4, max_sequence_length=32)
    assert arguments == {"max_sequence_length": 32, "order": 3}  # no heads


def test_in_a_metaformer_block(rng):
    block = MetaFormerBlock("hyena", {"filter_order": 8}, norm_first=True)
    x = rng.standard_normal((2, 10, 8)).astype("float32")
    y = to_numpy(block(x))
    assert y.shape == (2, 10, 8)
    assert isinstance(block.mixer, HyenaOperator)
    assert block.mixer.causal
    later = x.copy()
    later[:, 6:] += 1.0
    assert_close(to_numpy(block(later))[:, :6], y[:, :6], "float32_model", scale=True)


def test_in_a_backbone_that_trains(tmp_path):
    backbone = FFTNetBackbone(
        vocabulary_size=20, max_sequence_length=12, hidden_dim=8, num_layers=2, num_heads=2,
        token_mixer="hyena", token_mixer_kwargs={"filter_order": 8},
    )  # fmt: skip
    mixer = backbone.get_layer("block_0").mixer
    assert isinstance(mixer, HyenaOperator)
    assert mixer.max_sequence_length == 12
    inputs = keras.Input((None,), dtype="int32")
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(backbone(inputs)))
    model = keras.Model(inputs, logits)
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    ids = np.random.default_rng(0).integers(1, 20, (4, 12))
    ids[0, 9:] = 0  # padding
    before = [to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(ids, np.array([0, 1, 2, 1]), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [to_numpy(w) for w in model.trainable_weights]
    assert all(not np.array_equal(a, b) for a, b in zip(after, before, strict=True))
    path = tmp_path / "model.keras"
    model.save(path)
    np.testing.assert_array_equal(
        to_numpy(keras.models.load_model(path)(ids)), to_numpy(model(ids))
    )


# --- FLOPs and layouts ------------------------------------------------------------------------


def test_flop_formula_by_hand():
    """N = 8 tokens, D = 4, order 2, filter_order 6, emb_dim 3, 2 inner layers, 3 taps."""
    tally = flops.Tally()
    HyenaOperator.count_flops(tally, 8, 4, {"filter_order": 6})
    fft = 3 * 4 * round(2.5 * 16 * 4)  # rfft(u), rfft(h), irfft at 2N = 16, per channel
    dense = (
        (2 * 8 * 4 * 12 + 8 * 12)  # in projection D -> 3D
        + (2 * 8 * 12 * 3 + 8 * 12)  # short convolution: 3 taps per column, and its bias
        + (2 * 8 * 3 * 6 + 8 * 6)  # filter FFN: 3 features -> 6
        + 2 * (2 * 8 * 6 * 6 + 8 * 6)  # two inner layers 6 -> 6
        + 2 * 8 * 6 * 4  # output layer 6 -> D filter channels, no bias
        + (2 * 8 * 4 * 4 + 8 * 4)  # out projection
    )
    expected = {
        "dense": dense,
        "fft": fft,
        "activation": 6 * 8 * 6 * 3,  # three sines (multiply + sine) on 8 × 6
        "spectral_filter": 8 * 8 * 4 + 6 * 9 * 4,  # window on 8 × 4; complex product, 9 bins
        "elementwise": 2 * 8 * 4 + 2 * 8 * 4,  # skip term; two gates
    }
    result = tally.result()
    assert {k: v for k, v in result.breakdown.items() if v} == expected
    assert result.matmul_only == dense - (8 * 12 + 8 * 12 + 8 * 6 + 2 * 8 * 6 + 8 * 4)
    bidirectional = flops.Tally()
    HyenaOperator.count_flops(bidirectional, 8, 4, {"filter_order": 6, "causal": False})
    extra = {k: bidirectional.counts[k] - tally.counts[k] for k in flops.CATEGORIES}
    ffn = (2 * 8 * 3 * 6 + 8 * 6) + 2 * (2 * 8 * 6 * 6 + 8 * 6) + 2 * 8 * 6 * 4
    assert {k: v for k, v in extra.items() if v} == {
        "dense": ffn,
        "activation": 6 * 8 * 6 * 3,
        "spectral_filter": 8 * 8 * 4,
    }


def test_flops_of_a_model_and_growth_in_the_length():
    def total(length, order=2):
        config = {
            "family": "fftnet", "vocabulary_size": 10, "max_sequence_length": length,
            "hidden_dim": 8, "num_layers": 1, "num_heads": 2, "token_mixer": "hyena",
            "token_mixer_kwargs": {"order": order},
        }  # fmt: skip
        result = flops.count_flops(config, (length,))
        assert sum(result.breakdown.values()) == result.total
        return result

    small, large = total(1024), total(4096)
    assert large.breakdown["attention_scores"] == 0
    # 4× the tokens: the FFTs grow as N log N (factor 4·13/11), all the rest linearly.
    assert large.breakdown["fft"] / small.breakdown["fft"] == pytest.approx(4 * 13 / 11, rel=1e-3)
    assert large.breakdown["dense"] == 4 * small.breakdown["dense"]
    assert total(1024, order=3).breakdown["fft"] == 2 * small.breakdown["fft"]


@pytest.mark.parametrize("causal", [True, False])
def test_model_parallel_layout_names_real_weights_with_their_rank(causal):
    layer = HyenaOperator(filter_order=8, causal=causal, order=3)
    layer.build((None, 9, 8))
    paths = {v.path.split("/", 1)[1]: v for v in layer.weights}
    sharded = set()
    for pattern, axes in HyenaOperator.model_parallel_layout.items():
        matched = [p for p in paths if re.fullmatch(pattern, p)]
        assert matched, (pattern, sorted(paths))
        assert list(axes).count("model") == 1
        for p in matched:
            assert len(paths[p].shape) == len(axes), (pattern, p)
            sharded.add(p)
    assert ("reverse_filter/output_dense/kernel" in sharded) is not causal
    # Channel-major columns: 2 shards of the 4·8 projection columns hold channels 0-3 and 4-7,
    # every stream of each, so the gating and convolutions need no exchange between shards.
    columns = np.arange(4 * 8).reshape(2, -1)
    assert [sorted(set(c // 4)) for c in columns] == [[0, 1, 2, 3], [4, 5, 6, 7]]
