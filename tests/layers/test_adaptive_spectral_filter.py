import keras
import numpy as np
import pytest

from spectralmix import reference as R
from spectralmix.layers import AdaptiveSpectralFilter
from tests.helpers import (
    BACKEND,
    assert_close,
    finite_difference_grads,
    run_layer_test,
    spectral_filter_weights,
    to_numpy,
    value_and_grads,
    weights_by_name,
)

ORACLE_KEYS = {
    "base_filter": "base_filter",
    "spectral_bias": "bias",
    "context_dense/kernel": "context_kernel",
    "context_dense/bias": "context_bias",
    "modulation_dense/kernel": "modulation_kernel",
    "modulation_dense/bias": "modulation_bias",
}


def _built_layer(rng, channels=8, heads=2, max_length=12, **kwargs):
    layer = AdaptiveSpectralFilter(heads, max_sequence_length=max_length, **kwargs)
    layer.build((None, None, channels))
    # Move every weight off its initial value so the test sees each one act.
    for v in layer.weights:
        v.assign(to_numpy(v) + 0.3 * rng.standard_normal(v.shape).astype("float32"))
    return layer


def _oracle(layer, x, mask=None):
    return R.adaptive_spectral_filter(
        x.astype(np.float64),
        num_heads=layer.num_heads,
        max_sequence_length=layer.max_sequence_length,
        variant=layer.variant,
        modrelu_epsilon=layer.modrelu_epsilon,
        mask=mask,
        **spectral_filter_weights(weights_by_name(layer)),
    )


@pytest.mark.parametrize("variant", ["v1", "v2"])
@pytest.mark.parametrize("adaptive", [True, False])
@pytest.mark.parametrize("length", [12, 7, 13, 30])
def test_matches_oracle_at_any_length(rng, variant, adaptive, length):
    layer = _built_layer(rng, variant=variant, adaptive=adaptive)
    x = rng.standard_normal((3, length, 8)).astype("float32")
    assert_close(layer(x), _oracle(layer, x))


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_gradients_match_finite_differences(rng, variant):
    layer = _built_layer(rng, channels=4, heads=2, max_length=6, variant=variant)
    x = rng.standard_normal((2, 6, 4))
    cotangent = rng.standard_normal((2, 6, 4))
    names = [v.path[len(layer.path) + 1 :] for v in layer.trainable_weights]
    weights = [np.asarray(to_numpy(v), np.float64) for v in layer.trainable_weights]

    def oracle(x, *ws):
        kwargs = {ORACLE_KEYS[n]: w for n, w in zip(names, ws, strict=True)}
        return R.adaptive_spectral_filter(
            x, num_heads=2, max_sequence_length=6, variant=variant, **kwargs
        )

    expected = finite_difference_grads(oracle, [x, *weights], cotangent)
    y, gx, gw = value_and_grads(layer, x, cotangent)
    assert_close(y, oracle(x, *weights))
    for actual, want in zip([gx, *gw], expected, strict=True):
        assert_close(actual, want, "float32_grad", scale=True)


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_mask_padded_content_never_reaches_real_outputs(rng, variant):
    layer = _built_layer(rng, variant=variant)
    x = rng.standard_normal((2, 12, 8)).astype("float32")
    mask = np.ones((2, 12), bool)
    mask[0, 8:] = False
    mask[1, 3:] = False
    noisy = x.copy()
    noisy[~mask] = 1e3 * rng.standard_normal((int((~mask).sum()), 8))
    y = to_numpy(layer(x, mask=mask))
    np.testing.assert_array_equal(to_numpy(layer(noisy, mask=mask)), y)
    np.testing.assert_array_equal(y[~mask], 0.0)
    assert_close(y, _oracle(layer, x, mask))


def test_keras_mask_flows_from_embedding(rng):
    ids = np.array([[3, 1, 4, 1, 5, 0, 0, 0], [2, 7, 0, 0, 0, 0, 0, 0]])
    inputs = keras.Input((8,), dtype="int32")
    embedded = keras.layers.Embedding(10, 8, mask_zero=True)(inputs)
    model = keras.Model(inputs, AdaptiveSpectralFilter(2, name="mixer")(embedded))
    embedding = to_numpy(model.layers[1](ids))
    expected = to_numpy(model.get_layer("mixer")(embedding, mask=ids != 0))
    np.testing.assert_allclose(to_numpy(model(ids)), expected, rtol=1e-6, atol=1e-6)
    assert (to_numpy(model(ids))[ids == 0] == 0).all()


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_layer_contract(tmp_path, variant):
    run_layer_test(
        lambda **kw: AdaptiveSpectralFilter(2, variant=variant, **kw),
        (16, 8),
        tmp_path,
        expected_trainable=6,
    )


def test_weights_stay_float32_under_mixed_precision():
    layer = AdaptiveSpectralFilter(2, dtype="mixed_bfloat16")
    y = layer(np.ones((1, 8, 4), "float32"))
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    for v in layer.weights:
        assert v.dtype == "float32", v.path
    assert layer.context_dense.compute_dtype == "float32"


def test_max_sequence_length_defaults_to_built_length_and_is_saved():
    layer = AdaptiveSpectralFilter(2)
    layer(np.ones((1, 10, 4), "float32"))
    assert layer.max_sequence_length == 10
    assert layer.base_filter.shape == (2, 6)
    assert AdaptiveSpectralFilter.from_config(layer.get_config()).max_sequence_length == 10


def test_jit_compiled_call_matches_eager(rng):
    layer = _built_layer(rng)
    x = rng.standard_normal((2, 12, 8)).astype("float32")
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

    layer = _built_layer(rng)
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 8))])
    for length in (12, 9, 20):
        x = rng.standard_normal((2, length, 8)).astype("float32")
        assert_close(fn(x), _oracle(layer, x))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_heads": 0}, ValueError, "num_heads=0"),
        ({"num_heads": 2.5}, ValueError, "num_heads=2.5"),
        ({"num_heads": 2, "variant": "v3"}, ValueError, "variant='v3'"),
        ({"num_heads": 2, "max_sequence_length": -4}, ValueError, "max_sequence_length=-4"),
        ({"num_heads": 2, "adaptive": "yes"}, TypeError, "adaptive='yes'"),
        ({"num_heads": 2, "modrelu_epsilon": -1e-3}, ValueError, "modrelu_epsilon=-0.001"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        AdaptiveSpectralFilter(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"rank 3.*input_shape=\(2, 8\)"):
        AdaptiveSpectralFilter(2)(np.ones((2, 8), "float32"))
    with pytest.raises(ValueError, match="num_heads=3"):
        AdaptiveSpectralFilter(3)(np.ones((1, 8, 4), "float32"))
    with pytest.raises(ValueError, match="int32"):
        AdaptiveSpectralFilter(2)(np.ones((1, 8, 4), "int32"))
    with pytest.raises(ValueError, match="max_sequence_length"):
        AdaptiveSpectralFilter(2)(keras.Input((None, 4)))


def _with_fft_impl(layer, fft_impl):
    other = AdaptiveSpectralFilter.from_config({**layer.get_config(), "fft_impl": fft_impl})
    other.build((None, None, 8))
    other.set_weights(layer.get_weights())
    return other


@pytest.mark.parametrize("variant", ["v1", "v2"])
@pytest.mark.parametrize("length", [12, 7, 13, 30])
def test_dft_equals_fft_in_values_and_gradients(rng, variant, length):
    layer = _built_layer(rng, variant=variant)
    dft_layer = _with_fft_impl(layer, "dft")
    assert dft_layer.get_config()["fft_impl"] == "dft"
    x = rng.standard_normal((3, length, 8))
    cotangent = rng.standard_normal((3, length, 8))
    mask = np.ones((3, length), bool)
    mask[1, length // 2 :] = False
    y, gx, gw = value_and_grads(layer, x, cotangent, mask=mask)
    y_dft, gx_dft, gw_dft = value_and_grads(dft_layer, x, cotangent, mask=mask)
    assert_close(y_dft, y)
    assert_close(y_dft, _oracle(dft_layer, x, mask))
    for got, want in zip([gx_dft, *gw_dft], [gx, *gw], strict=True):
        assert_close(got, want, "float32_grad", scale=True)


def test_auto_runs_the_dft_up_to_the_crossover(rng, monkeypatch):
    from spectralmix.backends import dft

    layer = _built_layer(rng)
    auto = _with_fft_impl(layer, "auto")
    calls = []
    original = dft.spectral_filter
    monkeypatch.setattr(
        dft, "spectral_filter", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    monkeypatch.setitem(dft.CROSSOVER, BACKEND, 12)
    for length, used_dft in ((12, True), (13, False)):
        calls.clear()
        x = rng.standard_normal((2, length, 8)).astype("float32")
        assert_close(auto(x), to_numpy(layer(x)))
        assert bool(calls) == used_dft


def test_fft_impl_is_checked_and_saved():
    layer = AdaptiveSpectralFilter(2, fft_impl="dft")
    assert AdaptiveSpectralFilter.from_config(layer.get_config()).fft_impl == "dft"
    with pytest.raises(ValueError, match="fft_impl='matmul'"):
        AdaptiveSpectralFilter(2, fft_impl="matmul")


def test_modrelu_epsilon_is_used_saved_and_defaults_to_the_authors_value(rng):
    layer = _built_layer(rng, modrelu_epsilon=0.5)
    x = rng.standard_normal((2, 12, 8)).astype("float32")
    assert_close(layer(x), _oracle(layer, x))  # the oracle takes layer.modrelu_epsilon
    exact = AdaptiveSpectralFilter.from_config({**layer.get_config(), "modrelu_epsilon": 0.0})
    exact.build((None, None, 8))
    exact.set_weights(layer.get_weights())
    assert np.abs(to_numpy(exact(x)) - to_numpy(layer(x))).max() > 1e-3  # epsilon acts
    assert AdaptiveSpectralFilter(2).modrelu_epsilon == 1e-3
    # A config saved before `modrelu_epsilon` existed loads with the exact modReLU.
    legacy = {k: v for k, v in layer.get_config().items() if k != "modrelu_epsilon"}
    assert AdaptiveSpectralFilter.from_config(legacy).modrelu_epsilon == 0.0


# --- filter_bins: the filter's resolution, apart from the length ----------------------------


def _oracle_on(layer, x, filter_length):
    """The oracle with the filter defined for `filter_length` tokens."""
    return R.adaptive_spectral_filter(
        x.astype(np.float64),
        num_heads=layer.num_heads,
        max_sequence_length=filter_length,
        variant=layer.variant,
        modrelu_epsilon=layer.modrelu_epsilon,
        **spectral_filter_weights(weights_by_name(layer)),
    )


@pytest.mark.parametrize("variant", ["v1", "v2"])
@pytest.mark.parametrize("length", [12, 13])
def test_filter_bins_of_the_length_is_the_papers_exact_form(rng, variant, length):
    layer = AdaptiveSpectralFilter(2, filter_bins=length // 2 + 1, variant=variant)
    x = rng.standard_normal((2, length, 8)).astype("float32")
    layer.build(x.shape)
    for v in layer.weights:
        v.assign(to_numpy(v) + 0.3 * rng.standard_normal(v.shape).astype("float32"))
    assert layer.filter_length == length  # odd lengths too: bins j / N, not j / (2(K - 1))
    assert layer.base_filter.shape == (2, length // 2 + 1)
    assert_close(layer(x), _oracle_on(layer, x, length))


@pytest.mark.parametrize("variant", ["v1", "v2"])
@pytest.mark.parametrize("adaptive", [True, False])
@pytest.mark.parametrize("length", [12, 6, 7, 30])
def test_fewer_bins_are_the_oracle_with_the_filter_resampled(rng, variant, adaptive, length):
    # 4 bins for 12 tokens: the filter sits at frequencies j / 6 and is resampled.
    layer = _built_layer(rng, filter_bins=4, variant=variant, adaptive=adaptive)
    assert (layer.filter_bins, layer.filter_length) == (4, 6)
    assert layer.base_filter.shape == (2, 4)
    x = rng.standard_normal((3, length, 8)).astype("float32")
    assert_close(layer(x), _oracle_on(layer, x, 6))


def test_default_filter_bins_keep_the_exact_form_to_4096_tokens_then_stay_bounded():
    cases = {
        # max_sequence_length: (filter_bins, filter_length)
        4096: (2049, 4096),
        4097: (2049, 4097),  # 4097 // 2 + 1 = 2049: still one value per bin of its length
        4098: (2049, 4096),
        1_048_576: (2049, 4096),
        10: (6, 10),
    }
    for max_length, expected in cases.items():
        layer = AdaptiveSpectralFilter(4, max_sequence_length=max_length, adaptive=False)
        layer.build((None, None, 8))
        assert (layer.filter_bins, layer.filter_length) == expected, max_length
        assert layer.base_filter.shape == (4, expected[0])


@pytest.mark.parametrize("variant", ["v1", "v2"])
@pytest.mark.parametrize("adaptive", [True, False])
@pytest.mark.parametrize(("max_length", "filter_bins"), [(12, None), (12, 4), (9, None)])
def test_parameter_count_formula(variant, adaptive, max_length, filter_bins):
    arguments = {
        "num_heads": 2,
        "max_sequence_length": max_length,
        "filter_bins": filter_bins,
        "variant": variant,
        "adaptive": adaptive,
    }
    layer = AdaptiveSpectralFilter(**arguments)
    layer.build((None, None, 8))
    assert AdaptiveSpectralFilter.count_parameters(8, arguments) == layer.count_params()
    # By hand, v1, adaptive: 2·H·K + C·C + C + (C + 1)·H·K with C = 8, H = 2, K = 7.
    if (variant, adaptive, max_length, filter_bins) == ("v1", True, 12, None):
        assert layer.count_params() == 2 * 2 * 7 + 8 * 8 + 8 + 9 * 2 * 7


def test_parameters_at_a_million_tokens_by_default():
    arguments = {"num_heads": 4, "max_sequence_length": 1_048_576}
    # 2·4·2049 + 64·64 + 64 + 65·4·2049: the per-bin filter would have 140,513,612.
    assert AdaptiveSpectralFilter.count_parameters(64, arguments) == 553_292
    per_bin = {**arguments, "filter_bins": 524_289}
    assert AdaptiveSpectralFilter.count_parameters(64, per_bin) == 140_513_612


def test_filter_bins_is_saved_and_legacy_configs_load_with_a_bin_per_frequency(rng, tmp_path):
    layer = _built_layer(rng, filter_bins=4)
    assert layer.get_config()["filter_bins"] == 4
    restored = AdaptiveSpectralFilter.from_config(layer.get_config())
    restored.build((None, None, 8))
    restored.set_weights(layer.get_weights())
    x = rng.standard_normal((2, 9, 8)).astype("float32")
    assert_close(restored(x), to_numpy(layer(x)))
    # A config saved before `filter_bins` existed: one filter value per bin of its length,
    # at any length (beyond 4,096 tokens the default would now be 2,049 bins).
    old = {k: v for k, v in layer.get_config().items() if k != "filter_bins"}
    for max_length in (12, 8192):
        legacy = AdaptiveSpectralFilter.from_config({**old, "max_sequence_length": max_length})
        legacy.build((None, None, 8))
        assert legacy.base_filter.shape == (2, max_length // 2 + 1)
        assert legacy.filter_length == max_length


def test_keras_file_round_trip_with_fewer_bins(tmp_path):
    run_layer_test(
        lambda **kw: AdaptiveSpectralFilter(2, filter_bins=5, **kw),
        (16, 8),
        tmp_path,
        expected_trainable=6,
    )


def test_unknown_length_needs_only_filter_bins(rng):
    layer = AdaptiveSpectralFilter(2, filter_bins=4)
    layer.build((None, None, 8))
    assert (layer.max_sequence_length, layer.filter_length) == (None, 6)
    x = rng.standard_normal((1, 10, 8)).astype("float32")
    assert_close(layer(x), _oracle_on(layer, x, 6))


@pytest.mark.parametrize(
    ("value", "error"), [(1, ValueError), (0, ValueError), (-3, ValueError), (2.5, TypeError)]
)
def test_bad_filter_bins(value, error):
    with pytest.raises(error, match=f"filter_bins={value}"):
        AdaptiveSpectralFilter(2, filter_bins=value)
