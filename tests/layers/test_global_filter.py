import math

import keras
import numpy as np
import pytest

from spectralmix import reference as R
from spectralmix.layers import GlobalFilter, MetaFormerBlock, get_token_mixer
from tests.helpers import (
    BACKEND,
    assert_close,
    finite_difference_grads,
    run_layer_test,
    to_numpy,
    value_and_grads,
)


def _built_layer(rng, channels=5, max_length=12, **kwargs):
    layer = GlobalFilter(max_sequence_length=max_length, **kwargs)
    layer.build((None, None, channels))
    # Weights of order 1 (GFNet's 0.02 would hide errors in the output's scale).
    for v in layer.weights:
        v.assign(rng.standard_normal(v.shape).astype("float32"))
    return layer


def _weights(layer):
    return [np.asarray(to_numpy(v), np.float64) for v in (layer.filter_real, layer.filter_imag)]


def _oracle(layer, x, mask=None):
    return R.global_filter(
        np.asarray(x, np.float64),
        *_weights(layer),
        max_sequence_length=layer.max_sequence_length,
        mask=mask,
    )


@pytest.mark.parametrize("fft_impl", ["fft", "dft"])
@pytest.mark.parametrize(("max_length", "length"), [(12, 12), (12, 7), (12, 13), (12, 30), (9, 9)])
def test_matches_oracle_at_any_length(rng, fft_impl, max_length, length):
    layer = _built_layer(rng, max_length=max_length, fft_impl=fft_impl)
    x = rng.standard_normal((3, length, 5)).astype("float32")
    assert_close(layer(x), _oracle(layer, x))


def test_identity_and_zero_filters_by_hand(rng):
    x = rng.standard_normal((2, 11, 4)).astype("float32")
    identity = GlobalFilter(real_initializer="ones", imag_initializer="zeros")
    assert_close(identity(x), x)
    zero = GlobalFilter(real_initializer="zeros", imag_initializer="zeros")
    np.testing.assert_array_equal(to_numpy(zero(x)), 0.0)


@pytest.mark.parametrize("length", [10, 9])
@pytest.mark.parametrize("shift", [1, 3])
def test_a_pure_delay_filter_rolls_the_tokens(rng, length, shift):
    """`W_k = exp(-2πi k s / N)` is a circular delay by `s` tokens: `y_t = x_{t-s mod N}`."""
    channels = 3
    layer = GlobalFilter()
    layer.build((None, length, channels))
    angle = -2 * math.pi * np.arange(length // 2 + 1) * shift / length
    phase = np.repeat(angle[:, None], channels, axis=1)
    layer.filter_real.assign(np.cos(phase).astype("float32"))
    layer.filter_imag.assign(np.sin(phase).astype("float32"))
    x = rng.standard_normal((2, length, channels)).astype("float32")
    assert_close(layer(x), np.roll(x, shift, axis=1))


@pytest.mark.parametrize(("max_length", "length"), [(6, 6), (6, 5), (5, 8)])
def test_gradients_match_finite_differences(rng, max_length, length):
    layer = _built_layer(rng, channels=3, max_length=max_length)
    x = rng.standard_normal((2, length, 3))
    cotangent = rng.standard_normal((2, length, 3))

    def oracle(x, real, imag):
        return R.global_filter(x, real, imag, max_sequence_length=max_length)

    expected = finite_difference_grads(oracle, [x, *_weights(layer)], cotangent)
    y, gx, gw = value_and_grads(layer, x, cotangent)
    assert_close(y, oracle(x, *_weights(layer)))
    assert len(gw) == 2
    for actual, want in zip([gx, *gw], expected, strict=True):
        assert_close(actual, want, "float32_grad", scale=True)


@pytest.mark.parametrize("fft_impl", ["fft", "dft"])
def test_mask_padded_content_never_reaches_real_outputs(rng, fft_impl):
    layer = _built_layer(rng, fft_impl=fft_impl)
    x = rng.standard_normal((2, 12, 5)).astype("float32")
    mask = np.ones((2, 12), bool)
    mask[0, 8:] = False
    mask[1, 3:] = False
    noisy = x.copy()
    noisy[~mask] = 1e3 * rng.standard_normal((int((~mask).sum()), 5))
    y = to_numpy(layer(x, mask=mask))
    np.testing.assert_array_equal(to_numpy(layer(noisy, mask=mask)), y)
    np.testing.assert_array_equal(y[~mask], 0.0)
    assert_close(y, _oracle(layer, x, mask))


def test_keras_mask_flows_from_embedding():
    ids = np.array([[3, 1, 4, 1, 5, 0, 0, 0], [2, 7, 0, 0, 0, 0, 0, 0]])
    inputs = keras.Input((8,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    model = keras.Model(inputs, GlobalFilter(name="mixer")(embedded))
    embedding = to_numpy(model.layers[1](ids))
    expected = to_numpy(model.get_layer("mixer")(embedding, mask=ids != 0))
    np.testing.assert_allclose(to_numpy(model(ids)), expected, rtol=1e-6, atol=1e-6)
    assert (to_numpy(model(ids))[ids == 0] == 0).all()


def test_layer_contract(tmp_path):
    run_layer_test(lambda **kw: GlobalFilter(**kw), (16, 8), tmp_path, expected_trainable=2)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_runs_a_float32_island(rng, policy):
    layer = _built_layer(rng, channels=8)
    mixed = GlobalFilter(max_sequence_length=12, dtype=policy)
    mixed.build((None, None, 8))
    mixed.set_weights(layer.get_weights())
    for v in mixed.weights:
        assert v.dtype == "float32", v.path
    x = rng.standard_normal((2, 12, 8)).astype("float32")
    y = mixed(x)
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    # Only the input and output roundings differ from float32.
    assert_close(y, to_numpy(layer(x)), policy, scale=True)


def test_max_sequence_length_defaults_to_built_length_and_is_saved():
    layer = GlobalFilter()
    layer(np.ones((1, 10, 4), "float32"))
    assert layer.max_sequence_length == 10
    assert tuple(layer.filter_real.shape) == tuple(layer.filter_imag.shape) == (6, 4)
    assert GlobalFilter.from_config(layer.get_config()).max_sequence_length == 10


def test_default_initialization_is_gfnets(rng):
    """GFNet: `randn(...) * 0.02` for each part; the two parts and two layers draw apart."""
    layers = [GlobalFilter(max_sequence_length=1022) for _ in range(2)]
    for layer in layers:
        layer.build((None, None, 64))
    real, imag = _weights(layers[0])
    for part in (real, imag):
        assert abs(part.std() - 0.02) < 0.001
        assert abs(part.mean()) < 0.001
    assert not np.array_equal(real, imag)
    assert not np.array_equal(real, _weights(layers[1])[0])
    # An initializer instance shared by both parts still draws each part afresh.
    shared = keras.initializers.RandomNormal(stddev=1.0)
    layer = GlobalFilter(real_initializer=shared, imag_initializer=shared)
    layer.build((None, 8, 4))
    assert not np.array_equal(*_weights(layer))
    config = GlobalFilter.from_config(layers[0].get_config()).get_config()
    assert config["real_initializer"]["class_name"] == "RandomNormal"
    assert config["real_initializer"]["config"]["stddev"] == 0.02


def test_initializers_are_used_and_saved():
    layer = GlobalFilter(real_initializer="ones", imag_initializer=keras.initializers.Constant(2))
    layer.build((None, 6, 3))
    real, imag = _weights(layer)
    np.testing.assert_array_equal(real, 1.0)
    np.testing.assert_array_equal(imag, 2.0)
    clone = GlobalFilter.from_config(layer.get_config())
    clone.build((None, 6, 3))
    np.testing.assert_array_equal(_weights(clone)[1], 2.0)


def test_jit_compiled_call_matches_eager(rng):
    layer = _built_layer(rng)
    x = rng.standard_normal((2, 12, 5)).astype("float32")
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


@pytest.mark.parametrize("fft_impl", ["fft", "dft"])
def test_unknown_length_in_a_tf_graph(rng, fft_impl):
    if BACKEND != "tensorflow":
        pytest.skip("only TensorFlow graphs carry run-time sequence lengths")
    import tensorflow as tf

    layer = _built_layer(rng, fft_impl=fft_impl)
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 5))])
    for length in (12, 9, 20):
        x = rng.standard_normal((2, length, 5)).astype("float32")
        assert_close(fn(x), _oracle(layer, x))


@pytest.mark.parametrize("length", [12, 7, 30])
def test_dft_equals_fft_in_values_and_gradients(rng, length):
    layer = _built_layer(rng)
    dft_layer = GlobalFilter.from_config({**layer.get_config(), "fft_impl": "dft"})
    dft_layer.build((None, None, 5))
    dft_layer.set_weights(layer.get_weights())
    assert dft_layer.get_config()["fft_impl"] == "dft"
    x = rng.standard_normal((3, length, 5))
    cotangent = rng.standard_normal((3, length, 5))
    mask = np.ones((3, length), bool)
    mask[1, length // 2 :] = False
    y, gx, gw = value_and_grads(layer, x, cotangent, mask=mask)
    y_dft, gx_dft, gw_dft = value_and_grads(dft_layer, x, cotangent, mask=mask)
    assert_close(y_dft, y)
    for got, want in zip([gx_dft, *gw_dft], [gx, *gw], strict=True):
        assert_close(got, want, "float32_grad", scale=True)


def test_auto_runs_the_dft_up_to_the_crossover(rng, monkeypatch):
    from spectralmix.backends import dft

    layer = _built_layer(rng, fft_impl="auto")
    reference = _built_layer(rng)
    reference.set_weights(layer.get_weights())
    calls = []
    original = dft.rdft_matrices
    monkeypatch.setattr(dft, "rdft_matrices", lambda *a, **k: calls.append(1) or original(*a, **k))
    monkeypatch.setitem(dft.CROSSOVER, BACKEND, 12)
    for length, used_dft in ((12, True), (13, False)):
        calls.clear()
        x = rng.standard_normal((2, length, 5)).astype("float32")
        assert_close(layer(x), to_numpy(reference(x)))
        assert bool(calls) == used_dft


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_sequence_length": -4}, ValueError, "max_sequence_length=-4"),
        ({"max_sequence_length": 2.5}, ValueError, "max_sequence_length=2.5"),
        ({"fft_impl": "rfft"}, ValueError, "fft_impl='rfft'"),
        ({"real_initializer": "nope"}, ValueError, "real_initializer='nope'"),
        ({"imag_initializer": 3}, ValueError, "imag_initializer=3"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        GlobalFilter(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"rank 3.*input_shape=\(2, 8\)"):
        GlobalFilter()(np.ones((2, 8), "float32"))
    with pytest.raises(ValueError, match="int32"):
        GlobalFilter()(np.ones((1, 8, 4), "int32"))
    with pytest.raises(ValueError, match="channels"):
        GlobalFilter(max_sequence_length=8)(keras.Input((8, None)))
    with pytest.raises(ValueError, match="max_sequence_length"):
        GlobalFilter()(keras.Input((None, 4)))


def test_declarations():
    assert get_token_mixer("gfnet") is GlobalFilter
    assert GlobalFilter.causal is False
    assert GlobalFilter.model_arguments == ("max_sequence_length", "filter_bins")
    layer = GlobalFilter()
    layer.build((None, 8, 4))
    paths = {v.path.split("/", 1)[1]: len(v.shape) for v in layer.weights}
    assert paths == {"filter_real": 2, "filter_imag": 2}
    assert dict(GlobalFilter.model_parallel_layout) == {
        "filter_real": (None, "model"),
        "filter_imag": (None, "model"),
    }


def test_flop_formula_by_hand():
    from spectralmix.flops import Tally

    tally = Tally()
    # 10 tokens, 4 channels: K = 6 bins. rfft + irfft of 10 points per channel (2.5·10·log2 10
    # = 83.05 -> 83 each), one complex product (4 multiplies, 2 adds) per bin and channel.
    GlobalFilter.count_flops(tally, 10, 4, {"max_sequence_length": 16})
    counts = tally.result().breakdown
    assert counts["fft"] == 4 * 2 * 83
    assert counts["spectral_filter"] == 6 * 6 * 4
    assert sum(counts.values()) == 4 * 2 * 83 + 6 * 6 * 4


def test_in_a_metaformer_block_by_hand(rng):
    """Post-norm block with its MLP zeroed: `y = LN(x + irfft(rfft(x) · W))`."""
    block = MetaFormerBlock("gfnet", {"max_sequence_length": 8})
    block.build((None, None, 4))
    assert isinstance(block.mixer, GlobalFilter)
    for v in block.mixer.weights:
        v.assign(rng.standard_normal(v.shape).astype("float32"))
    for w in (block.mlp_dense2.kernel, block.mlp_dense2.bias):
        w.assign(np.zeros(w.shape, "float32"))
    x = rng.standard_normal((2, 6, 4))
    h = x + _oracle(block.mixer, x)
    mean, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
    assert_close(block(x.astype("float32")), (h - mean) / np.sqrt(var + 1e-5), "float32_model")


def test_fftnet_backbone_with_gfnet_fits_and_saves(rng, tmp_path):
    from spectralmix.models import FFTNetBackbone, FFTNetClassifier

    backbone = FFTNetBackbone(
        vocabulary_size=12,
        max_sequence_length=16,
        hidden_dim=8,
        num_layers=2,
        num_heads=2,
        token_mixer="gfnet",
        token_mixer_kwargs={"real_initializer": "ones", "imag_initializer": "zeros"},
    )
    mixer = backbone.get_layer("block_0").mixer
    assert isinstance(mixer, GlobalFilter)
    assert mixer.max_sequence_length == 16
    np.testing.assert_array_equal(_weights(mixer)[0], 1.0)
    model = FFTNetClassifier(backbone=backbone, num_classes=3)
    ids = rng.integers(1, 12, size=(8, 16))
    ids[:, 12:] = 0
    labels = rng.integers(0, 3, size=(8,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    before = _weights(mixer)
    loss = model.fit(ids, labels, epochs=1, batch_size=4, verbose=0).history["loss"][0]
    assert np.isfinite(loss)
    assert not np.array_equal(_weights(mixer)[0], before[0])
    assert tuple(model(ids[:, :10]).shape) == (8, 3)  # another length: the filter resampled
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(ids)), to_numpy(model(ids)), atol=1e-6)


# --- filter_bins: the filter's resolution, apart from the length ----------------------------


def _oracle_on(layer, x, filter_length):
    return R.global_filter(
        np.asarray(x, np.float64), *_weights(layer), max_sequence_length=filter_length
    )


@pytest.mark.parametrize("length", [12, 13])
def test_filter_bins_of_the_length_is_gfnets_exact_form(rng, length):
    layer = GlobalFilter(filter_bins=length // 2 + 1)
    x = rng.standard_normal((2, length, 5)).astype("float32")
    layer.build(x.shape)
    for v in layer.weights:
        v.assign(rng.standard_normal(v.shape).astype("float32"))
    assert layer.filter_length == length
    assert layer.filter_real.shape == (length // 2 + 1, 5)
    assert_close(layer(x), _oracle_on(layer, x, length))


@pytest.mark.parametrize("fft_impl", ["fft", "dft"])
@pytest.mark.parametrize("length", [12, 6, 7, 30])
def test_fewer_bins_are_the_oracle_with_the_filter_resampled(rng, fft_impl, length):
    layer = _built_layer(rng, filter_bins=4, fft_impl=fft_impl)  # bins j / 6
    assert (layer.filter_bins, layer.filter_length) == (4, 6)
    assert layer.filter_real.shape == (4, 5)
    x = rng.standard_normal((3, length, 5)).astype("float32")
    assert_close(layer(x), _oracle_on(layer, x, 6))


def test_default_filter_bins_keep_the_exact_form_to_4096_tokens_then_stay_bounded():
    for max_length, expected in {4096: (2049, 4096), 4098: (2049, 4096), 10: (6, 10)}.items():
        layer = GlobalFilter(max_sequence_length=max_length)
        layer.build((None, None, 2))
        assert (layer.filter_bins, layer.filter_length) == expected
        assert layer.count_params() == 2 * expected[0] * 2
    # 2·K·D: at a million tokens 2 · 2049 · 64 by default, 2 · 524289 · 64 per bin.
    assert GlobalFilter.count_parameters(64, {"max_sequence_length": 1_048_576}) == 262_272
    per_bin = {"max_sequence_length": 1_048_576, "filter_bins": 524_289}
    assert GlobalFilter.count_parameters(64, per_bin) == 67_108_992


@pytest.mark.parametrize(("max_length", "filter_bins"), [(12, None), (12, 4), (9, None)])
def test_parameter_count_formula(max_length, filter_bins):
    arguments = {"max_sequence_length": max_length, "filter_bins": filter_bins}
    layer = GlobalFilter(**arguments)
    layer.build((None, None, 3))
    assert GlobalFilter.count_parameters(3, arguments) == layer.count_params()


def test_filter_bins_is_saved_and_legacy_configs_load_with_a_bin_per_frequency(rng):
    layer = _built_layer(rng, filter_bins=4)
    assert layer.get_config()["filter_bins"] == 4
    restored = GlobalFilter.from_config(layer.get_config())
    restored.build((None, None, 5))
    restored.set_weights(layer.get_weights())
    x = rng.standard_normal((2, 9, 5)).astype("float32")
    assert_close(restored(x), to_numpy(layer(x)))
    old = {k: v for k, v in layer.get_config().items() if k != "filter_bins"}
    for max_length in (12, 8192):
        legacy = GlobalFilter.from_config({**old, "max_sequence_length": max_length})
        legacy.build((None, None, 5))
        assert legacy.filter_real.shape == (max_length // 2 + 1, 5)
        assert legacy.filter_length == max_length


def test_keras_file_round_trip_with_fewer_bins(tmp_path):
    run_layer_test(
        lambda **kw: GlobalFilter(filter_bins=5, **kw), (16, 4), tmp_path, expected_trainable=2
    )


def test_filter_bins_reaches_the_mixer_through_the_blocks():
    from spectralmix.layers import FFTNetBlock

    block = MetaFormerBlock("gfnet", {"filter_bins": 3})
    block.build((None, 16, 4))
    assert block.mixer.filter_real.shape == (3, 4)
    block = FFTNetBlock(num_heads=2, token_mixer="gfnet", filter_bins=3)
    block.build((None, 16, 4))
    assert (block.mixer.filter_bins, block.get_config()["filter_bins"]) == (3, 3)


@pytest.mark.parametrize(
    ("value", "error"), [(1, ValueError), (0, ValueError), (2.5, TypeError), ("4", TypeError)]
)
def test_bad_filter_bins(value, error):
    with pytest.raises(error, match=f"filter_bins={value!r}"):
        GlobalFilter(filter_bins=value)
