"""SelfAttention: keras.layers.MultiHeadAttention(x, x) with the token mixers' signature."""

import keras
import numpy as np
import pytest

from spectralmix.layers import SelfAttention
from tests.helpers import BACKEND, assert_close, run_layer_test, to_numpy
from tests.tolerances import TOLERANCES


def _perturbed(rng, channels=8, **kwargs):
    layer = SelfAttention(**{"num_heads": 2, **kwargs})
    layer.build((None, None, channels))
    # Move every weight (biases included) off its initial value so that each one acts.
    for v in layer.weights:
        v.assign(to_numpy(v) + 0.3 * rng.standard_normal(v.shape).astype("float32"))
    return layer


def _reference(layer, key_dim):
    """`keras.layers.MultiHeadAttention` with `layer`'s weights."""
    mha = keras.layers.MultiHeadAttention(layer.num_heads, key_dim=key_dim)
    x = np.zeros((1, 3, 8), "float32")
    mha(x, x)
    assert [w.shape for w in mha.weights] == [w.shape for w in layer.weights]
    mha.set_weights(layer.get_weights())
    return mha


def _mask():
    mask = np.ones((2, 7), bool)
    mask[1, 4:] = False
    return mask


@pytest.mark.parametrize("key_dim", [None, 3])
def test_equals_multi_head_attention_with_the_same_weights(rng, key_dim):
    layer = _perturbed(rng, key_dim=key_dim)
    mha = _reference(layer, key_dim or 8 // 2)
    x = rng.standard_normal((2, 7, 8)).astype("float32")
    assert_close(layer(x), to_numpy(mha(x, x)))
    mask = _mask()
    assert_close(layer(x, mask=mask), to_numpy(mha(x, x, value_mask=mask)))
    causal = _perturbed(rng, key_dim=key_dim, causal=True)
    mha = _reference(causal, key_dim or 8 // 2)
    assert_close(causal(x, mask=mask), to_numpy(mha(x, x, value_mask=mask, use_causal_mask=True)))


def test_key_dim_defaults_to_channels_per_head():
    layer = SelfAttention(num_heads=4)
    layer.build((None, None, 12))
    assert tuple(layer.query_dense.kernel.shape) == (12, 4, 3)
    assert tuple(layer.value_dense.kernel.shape) == (12, 4, 3)
    assert tuple(layer.output_dense.kernel.shape) == (4, 3, 12)
    explicit = SelfAttention(num_heads=4, key_dim=5)
    explicit.build((None, None, 12))
    assert tuple(explicit.key_dense.kernel.shape) == (12, 4, 5)


@pytest.mark.parametrize("use_mask", [False, True])
def test_causal_outputs_never_depend_on_later_tokens(rng, use_mask):
    """Perturbing the tokens after `t` changes no causal output at or before `t`, while the
    same perturbation changes the earlier outputs of the non-causal layer."""
    causal = _perturbed(rng, causal=True)
    full = SelfAttention(num_heads=2)
    full.build((None, None, 8))
    full.set_weights(causal.get_weights())
    x = rng.standard_normal((2, 7, 8)).astype("float32")
    mask = _mask() if use_mask else None
    y_causal, y_full = to_numpy(causal(x, mask=mask)), to_numpy(full(x, mask=mask))
    for t in range(6):
        perturbed = x.copy()
        perturbed[:, t + 1 :] += rng.standard_normal(perturbed[:, t + 1 :].shape).astype("float32")
        changed = to_numpy(causal(perturbed, mask=mask))
        assert_close(changed[:, : t + 1], y_causal[:, : t + 1], "float32_op")
        # Without the causal mask the earlier outputs move (in every real row of the batch:
        # row 1 has real tokens after `t` only while t < 3).
        moved = np.abs(to_numpy(full(perturbed, mask=mask))[:, : t + 1] - y_full[:, : t + 1])
        rows = [0] if use_mask and t >= 3 else [0, 1]
        assert moved[rows].max(axis=(1, 2)).min() > 100 * TOLERANCES["float32_op"], t


@pytest.mark.parametrize("use_mask", [False, True])
def test_causal_matches_the_reference_oracle(rng, use_mask):
    """Against `spectralmix.reference.multi_head_attention(causal=True)` (NumPy, float64)."""
    from spectralmix import reference

    layer = _perturbed(rng, causal=True)
    names = ["query_kernel", "query_bias", "key_kernel", "key_bias"]
    names += ["value_kernel", "value_bias", "output_kernel", "output_bias"]
    weights = {n: w.astype("float64") for n, w in zip(names, layer.get_weights(), strict=True)}
    x = rng.standard_normal((2, 7, 8))
    mask = _mask() if use_mask else None
    expected = reference.multi_head_attention(x, weights, num_heads=2, mask=mask, causal=True)
    actual = layer(x.astype("float32"), mask=mask)
    rows = mask if mask is not None else np.ones((2, 7), bool)
    assert_close(to_numpy(actual)[rows], expected[rows], "float32_op", scale=True)


def test_causal_first_token_attends_to_itself_only(rng):
    layer = _perturbed(rng, causal=True)
    x = rng.standard_normal((1, 5, 8)).astype("float32")
    first = to_numpy(layer(x[:, :1]))
    assert_close(to_numpy(layer(x))[:, :1], first)
    # One token: softmax over one score is 1, so the output is the value's output projection.
    named = {w.path.split("/", 1)[1]: to_numpy(w) for w in layer.weights}
    value = np.einsum("bnd,dhk->bnhk", x[:, :1], named["value/kernel"]) + named["value/bias"]
    expected = (
        np.einsum("bnhk,hkd->bnd", value, named["attention_output/kernel"])
        + named["attention_output/bias"]
    )
    assert_close(first, expected)


@pytest.mark.parametrize("causal", [False, True])
def test_padded_content_never_reaches_real_outputs(rng, causal):
    layer = _perturbed(rng, causal=causal)
    x = rng.standard_normal((2, 7, 8)).astype("float32")
    mask = np.ones((2, 7), bool)
    mask[1] = [False, False, True, True, True, False, False]  # padding before and after
    noisy = x.copy()
    noisy[~mask] = 1e3
    y = to_numpy(layer(x, mask=mask))
    assert np.isfinite(y).all()
    assert_close(to_numpy(layer(noisy, mask=mask))[mask], y[mask])
    # Without the mask the padded content does reach them.
    assert np.abs(to_numpy(layer(noisy))[1, 2:5] - to_numpy(layer(x))[1, 2:5]).min() > 1e-3


def test_keras_mask_flows_from_an_embedding(rng):
    ids = rng.integers(1, 10, (2, 7))
    ids[1, 4:] = 0
    inputs = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 8, mask_zero=True, name="embedding")(inputs)
    model = keras.Model(inputs, SelfAttention(2, name="attention")(embedded))
    embedding = to_numpy(model.get_layer("embedding")(ids))
    expected = to_numpy(model.get_layer("attention")(embedding, mask=ids != 0))
    mask = ids != 0
    assert_close(to_numpy(model(ids))[mask], expected[mask])


def test_symbolic_call_keeps_the_shape():
    inputs = keras.Input((None, 8))
    outputs = SelfAttention(num_heads=2, causal=True)(inputs)
    assert tuple(outputs.shape) == (None, None, 8)
    assert SelfAttention(2).compute_output_shape((3, 5, 8)) == (3, 5, 8)


def test_dropout_only_in_training(rng):
    layer = SelfAttention(num_heads=2, dropout=0.5)
    x = rng.standard_normal((2, 6, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(layer(x)), to_numpy(layer(x, training=False)))
    assert not np.allclose(to_numpy(layer(x, training=True)), to_numpy(layer(x)))


def test_config_round_trip_keeps_the_derived_key_dim_derived():
    layer = SelfAttention(num_heads=2, causal=True, dropout=0.1, kernel_initializer="zeros")
    config = layer.get_config()
    assert config["key_dim"] is None
    assert config["causal"] is True
    assert config["dropout"] == 0.1
    clone = SelfAttention.from_config(config)
    assert clone.get_config() == config
    clone.build((None, None, 12))  # the key size follows the channels it is built for
    assert tuple(clone.query_dense.kernel.shape) == (12, 2, 6)
    np.testing.assert_array_equal(to_numpy(clone.query_dense.kernel), 0.0)
    assert SelfAttention.from_config(SelfAttention(2, key_dim=3).get_config()).key_dim == 3


@pytest.mark.parametrize("causal", [False, True])
def test_layer_contract(tmp_path, causal):
    policies = ["mixed_bfloat16", "mixed_float16"]
    if BACKEND == "jax":
        # XLA:CPU has no float16 dot_general with float32 accumulation, which Keras's
        # MultiHeadAttention asks for (as in tests/layers/test_fftnet_block.py).
        policies.remove("mixed_float16")
    run_layer_test(
        lambda **kw: SelfAttention(2, causal=causal, **kw),
        (6, 8),
        tmp_path,
        expected_trainable=8,
        policies=policies,
    )


def test_mixed_precision_keeps_float32_weights(rng):
    layer = SelfAttention(2, causal=True, dtype="mixed_bfloat16")
    y = layer(rng.standard_normal((2, 6, 8)).astype("float32"))
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert {keras.backend.standardize_dtype(w.dtype) for w in layer.weights} == {"float32"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_heads": 0}, "num_heads=0"),
        ({"num_heads": 2.0}, "num_heads=2.0"),
        ({"num_heads": 2, "key_dim": 0}, "key_dim=0"),
        ({"num_heads": 2, "dropout": 1.0}, "dropout=1.0"),
        ({"num_heads": 2, "causal": "yes"}, "causal='yes'"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SelfAttention(**kwargs)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="num_heads=3"):
        SelfAttention(3)(np.ones((1, 4, 8), "float32"))
    with pytest.raises(ValueError, match="rank 3"):
        SelfAttention(2)(np.ones((4, 8), "float32"))
    with pytest.raises(ValueError, match="known number of channels"):
        SelfAttention(2).build((None, 4, None))


def _cached(layer, x, chunks, index_type=int):
    """`layer.call_with_cache` over `x` in chunks of the given lengths (the prompt, then the
    steps), the outputs concatenated; checks the cache keeps its static shapes."""
    cache = layer.init_cache(x.shape[0], x.shape[1])
    shapes = [tuple(c.shape) for c in cache]
    outputs, start = [], 0
    for length in chunks:
        index = start if index_type is int else keras.ops.convert_to_tensor(start, "int32")
        y, cache = layer.call_with_cache(x[:, start : start + length], cache, index)
        assert [tuple(c.shape) for c in cache] == shapes
        outputs.append(to_numpy(y))
        start += length
    assert start == x.shape[1]
    return np.concatenate(outputs, axis=1)


@pytest.mark.parametrize("index_type", [int, "tensor"])
@pytest.mark.parametrize("key_dim", [None, 3])
def test_cached_steps_match_the_causal_oracle(rng, index_type, key_dim):
    """A prompt of 4 tokens, single steps, then a chunk of 2: each output equals the causal
    oracle (`reference.multi_head_attention`, float64) and the full call at its position."""
    from spectralmix import reference

    layer = _perturbed(rng, causal=True, key_dim=key_dim)
    names = ["query_kernel", "query_bias", "key_kernel", "key_bias"]
    names += ["value_kernel", "value_bias", "output_kernel", "output_bias"]
    weights = {n: w.astype("float64") for n, w in zip(names, layer.get_weights(), strict=True)}
    x = rng.standard_normal((2, 9, 8))
    expected = reference.multi_head_attention(x, weights, num_heads=2, causal=True)
    cached = _cached(layer, x.astype("float32"), [4, 1, 1, 1, 2], index_type)
    assert_close(cached, expected, "float32_op", scale=True)
    assert_close(cached, to_numpy(layer(x.astype("float32"))), "float32_op", scale=True)


def test_cache_holds_keys_and_values_of_static_shape(rng):
    layer = _perturbed(rng, causal=True, key_dim=3)
    keys, values = layer.init_cache(batch_size=2, max_length=10)
    assert tuple(keys.shape) == (2, 10, 2, 3)
    assert tuple(values.shape) == (2, 10, 2, 3)
    np.testing.assert_array_equal(to_numpy(keys), 0.0)
    x = rng.standard_normal((2, 4, 8)).astype("float32")
    _, (keys, values) = layer.call_with_cache(x, (keys, values), 0)
    # The keys of the 4 tokens are written at positions 0-3; the rest stays zero.
    expected = np.einsum("bnd,dhk->bnhk", x, to_numpy(layer.key_dense.kernel))
    assert_close(to_numpy(keys)[:, :4], expected + to_numpy(layer.key_dense.bias))
    np.testing.assert_array_equal(to_numpy(keys)[:, 4:], 0.0)


def test_cache_follows_the_compute_dtype(rng):
    layer = SelfAttention(2, causal=True, dtype="mixed_bfloat16")
    layer.build((None, None, 8))
    cache = layer.init_cache(1, 5)
    assert {keras.backend.standardize_dtype(c.dtype) for c in cache} == {"bfloat16"}
    y, cache = layer.call_with_cache(rng.standard_normal((1, 2, 8)).astype("float32"), cache, 0)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert {keras.backend.standardize_dtype(c.dtype) for c in cache} == {"bfloat16"}


def test_cache_needs_a_causal_built_layer(rng):
    bidirectional = SelfAttention(2)
    bidirectional.build((None, None, 8))
    with pytest.raises(ValueError, match="causal=True. Received: causal=False"):
        bidirectional.init_cache(1, 4)
    with pytest.raises(ValueError, match="causal=True"):
        bidirectional.call_with_cache(np.zeros((1, 1, 8), "float32"), (None, None), 0)
    with pytest.raises(ValueError, match="built first"):
        SelfAttention(2, causal=True).init_cache(1, 4)
    layer = _perturbed(rng, causal=True)
    with pytest.raises(ValueError, match="max_length=0"):
        layer.init_cache(1, 0)
    with pytest.raises(ValueError, match="batch_size=1.5"):
        layer.init_cache(1.5, 4)
