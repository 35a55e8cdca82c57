import math

import keras
import numpy as np
import pytest

from spectralmix import reference as R
from spectralmix.layers import GlobalFilter2D, MetaFormerBlock, get_token_mixer
from tests.helpers import (
    BACKEND,
    assert_close,
    finite_difference_grads,
    run_layer_test,
    to_numpy,
    value_and_grads,
)


def _built_layer(rng, grid_shape=(4, 6), class_token=False, channels=5, **kwargs):
    layer = GlobalFilter2D(grid_shape=grid_shape, class_token=class_token, **kwargs)
    layer.build((None, None, channels))
    # Weights of order 1 (GFNet's 0.02 would hide errors in the output's scale).
    for v in layer.weights:
        v.assign(rng.standard_normal(v.shape).astype("float32"))
    return layer


def _weights(layer):
    return [
        np.asarray(to_numpy(v), np.float64) for v in (layer.filter_2d_real, layer.filter_2d_imag)
    ]


def _oracle(layer, x, grid=None, mask=None):
    return R.global_filter_2d(
        np.asarray(x, np.float64),
        *_weights(layer),
        filter_grid=layer.grid_shape,
        grid=grid,
        class_token=layer.class_token,
        mask=mask,
    )


# (the filter's grid, the input's grid): the built grid, then resampled to square grids.
GRIDS = [((4, 6), (4, 6)), ((4, 6), (5, 5)), ((5, 5), (3, 3)), ((4, 4), (7, 7)), ((3, 3), (3, 3))]


@pytest.mark.parametrize("fft_impl", ["fft", "dft"])
@pytest.mark.parametrize("class_token", [False, True])
@pytest.mark.parametrize(("grid_shape", "grid"), GRIDS)
def test_matches_oracle(rng, fft_impl, class_token, grid_shape, grid):
    layer = _built_layer(rng, grid_shape, class_token, fft_impl=fft_impl)
    x = rng.standard_normal((3, grid[0] * grid[1] + class_token, 5)).astype("float32")
    assert_close(layer(x), _oracle(layer, x, grid))


def test_identity_and_zero_filters_by_hand(rng):
    """`W = 1`: the patches come back unchanged; `W = 0`: zeros. The class token gets the
    mean of the patches it is given either way (the filter's input, not its output)."""
    layer = GlobalFilter2D(real_initializer="ones", imag_initializer="zeros")
    x = rng.standard_normal((2, 1 + 12, 3)).astype("float32")
    with pytest.raises(ValueError, match="13 tokens do not form a square patch grid"):
        layer(x)
    layer = GlobalFilter2D((3, 4), real_initializer="ones", imag_initializer="zeros")
    y = to_numpy(layer(x))
    assert layer.class_token
    assert_close(y[:, 1:], x[:, 1:])
    assert_close(y[:, 0], x[:, 1:].mean(axis=1))
    zero = GlobalFilter2D((3, 4), real_initializer="zeros", imag_initializer="zeros")
    y = to_numpy(zero(x))
    np.testing.assert_array_equal(y[:, 1:], 0.0)
    assert_close(y[:, 0], x[:, 1:].mean(axis=1))


@pytest.mark.parametrize(("grid", "shift"), [((4, 6), (1, 2)), ((5, 3), (2, 1)), ((4, 4), (3, 0))])
def test_a_pure_delay_filter_rolls_the_grid(rng, grid, shift):
    """`W[m, k] = exp(-2πi (m s_h / h + k s_w / w))` shifts the grid circularly by `(s_h, s_w)`."""
    (height, width), (s_h, s_w) = grid, shift
    layer = GlobalFilter2D(grid_shape=grid)
    layer.build((None, height * width, 3))
    m = np.arange(height)[:, None, None]
    k = np.arange(width // 2 + 1)[None, :, None]
    phase = -2 * math.pi * (m * s_h / height + k * s_w / width)
    phase = np.broadcast_to(phase, (height, width // 2 + 1, 3))
    layer.filter_2d_real.assign(np.cos(phase).astype("float32"))
    layer.filter_2d_imag.assign(np.sin(phase).astype("float32"))
    x = rng.standard_normal((2, height, width, 3)).astype("float32")
    expected = np.roll(x, (s_h, s_w), axis=(1, 2)).reshape(2, height * width, 3)
    assert_close(layer(x.reshape(2, height * width, 3)), expected)


@pytest.mark.parametrize("class_token", [False, True])
@pytest.mark.parametrize(("grid_shape", "grid"), [((2, 3), (2, 3)), ((3, 2), (2, 2))])
def test_gradients_match_finite_differences(rng, class_token, grid_shape, grid):
    layer = _built_layer(rng, grid_shape, class_token, channels=2)
    tokens = grid[0] * grid[1] + class_token
    x = rng.standard_normal((2, tokens, 2))
    cotangent = rng.standard_normal((2, tokens, 2))

    def oracle(x, real, imag):
        return R.global_filter_2d(
            x, real, imag, filter_grid=grid_shape, grid=grid, class_token=class_token
        )

    expected = finite_difference_grads(oracle, [x, *_weights(layer)], cotangent)
    y, gx, gw = value_and_grads(layer, x, cotangent)
    assert_close(y, oracle(x, *_weights(layer)))
    assert len(gw) == 2
    for actual, want in zip([gx, *gw], expected, strict=True):
        assert_close(actual, want, "float32_grad", scale=True)


@pytest.mark.parametrize("fft_impl", ["fft", "dft"])
@pytest.mark.parametrize("class_token", [False, True])
def test_mask_padded_content_never_reaches_real_outputs(rng, fft_impl, class_token):
    layer = _built_layer(rng, class_token=class_token, fft_impl=fft_impl)
    tokens = 24 + class_token
    x = rng.standard_normal((2, tokens, 5)).astype("float32")
    mask = np.ones((2, tokens), bool)
    mask[0, 18:] = False
    mask[1, 5:] = False
    noisy = x.copy()
    noisy[~mask] = 1e3 * rng.standard_normal((int((~mask).sum()), 5))
    y = to_numpy(layer(x, mask=mask))
    np.testing.assert_array_equal(to_numpy(layer(noisy, mask=mask)), y)
    np.testing.assert_array_equal(y[~mask], 0.0)
    assert_close(y, _oracle(layer, x, mask=mask))


def test_layer_contract(tmp_path):
    # 17 tokens: a class token and a 4 x 4 grid, decided from the count.
    run_layer_test(lambda **kw: GlobalFilter2D(**kw), (17, 8), tmp_path, expected_trainable=2)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_runs_a_float32_island(rng, policy):
    layer = _built_layer(rng, channels=8)
    mixed = GlobalFilter2D(grid_shape=(4, 6), class_token=False, dtype=policy)
    mixed.build((None, None, 8))
    mixed.set_weights(layer.get_weights())
    for v in mixed.weights:
        assert v.dtype == "float32", v.path
    x = rng.standard_normal((2, 24, 8)).astype("float32")
    y = mixed(x)
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    assert_close(y, to_numpy(layer(x)), policy, scale=True)


@pytest.mark.parametrize(
    ("kwargs", "tokens", "class_token", "grid"),
    [
        ({}, 16, False, (4, 4)),
        ({}, 17, True, (4, 4)),
        ({}, 1, False, (1, 1)),
        ({"max_sequence_length": 50}, None, True, (7, 7)),
        ({"class_token": True}, 10, True, (3, 3)),
        ({"grid_shape": (2, 5)}, 11, True, (2, 5)),
        ({"grid_shape": [2, 5]}, 10, False, (2, 5)),
        ({"grid_shape": (2, 5)}, None, False, (2, 5)),
        ({"grid_shape": (2, 5), "class_token": True}, None, True, (2, 5)),
    ],
)
def test_the_grid_and_class_token_are_resolved_at_build_and_saved(
    kwargs, tokens, class_token, grid
):
    layer = GlobalFilter2D(**kwargs)
    layer.build((None, tokens, 4))
    assert layer.class_token is class_token
    assert layer.grid_shape == grid
    assert tuple(layer.filter_2d_real.shape) == (grid[0], grid[1] // 2 + 1, 4)
    clone = GlobalFilter2D.from_config(layer.get_config())
    assert (clone.class_token, clone.grid_shape) == (class_token, grid)


@pytest.mark.parametrize(
    ("kwargs", "tokens", "match"),
    [
        ({}, 12, r"12 tokens do not form a square patch grid.*max_sequence_length=12"),
        ({"class_token": False}, 17, r"17 tokens do not form a square.*class_token=False"),
        ({"class_token": True}, 16, r"16 tokens do not form a square.*class_token=True"),
        ({"grid_shape": (2, 5)}, 12, r"12 tokens are neither the 10 patches of grid_shape"),
        ({}, None, "needs `grid_shape` or `max_sequence_length`"),
    ],
)
def test_tokens_that_form_no_grid_are_refused_at_build(kwargs, tokens, match):
    with pytest.raises(ValueError, match=match):
        GlobalFilter2D(**kwargs).build((None, tokens, 4))


def test_tokens_that_form_no_grid_are_refused_at_call(rng):
    layer = _built_layer(rng, (4, 6), class_token=True)
    with pytest.raises(ValueError, match=r"23 patch tokens form neither.*\(4, 6\).*class_token"):
        layer(np.ones((1, 24, 5), "float32"))


def test_jit_compiled_call_matches_eager(rng):
    layer = _built_layer(rng, class_token=True)
    x = rng.standard_normal((2, 25, 5)).astype("float32")
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
def test_unknown_token_count_in_a_tf_graph(rng, fft_impl):
    if BACKEND != "tensorflow":
        pytest.skip("only TensorFlow graphs carry run-time token counts")
    import tensorflow as tf

    layer = _built_layer(rng, class_token=True, fft_impl=fft_impl)
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 5))])
    for grid in ((4, 6), (5, 5), (3, 3), (6, 6)):
        x = rng.standard_normal((2, grid[0] * grid[1] + 1, 5)).astype("float32")
        assert_close(fn(x), _oracle(layer, x, grid))


@pytest.mark.parametrize(("grid_shape", "grid"), [((4, 6), (4, 6)), ((5, 5), (4, 4))])
def test_dft_equals_fft_in_values_and_gradients(rng, grid_shape, grid):
    layer = _built_layer(rng, grid_shape, class_token=True)
    dft_layer = GlobalFilter2D.from_config({**layer.get_config(), "fft_impl": "dft"})
    dft_layer.build((None, None, 5))
    dft_layer.set_weights(layer.get_weights())
    tokens = grid[0] * grid[1] + 1
    x = rng.standard_normal((3, tokens, 5))
    cotangent = rng.standard_normal((3, tokens, 5))
    mask = np.ones((3, tokens), bool)
    mask[1, tokens // 2 :] = False
    y, gx, gw = value_and_grads(layer, x, cotangent, mask=mask)
    y_dft, gx_dft, gw_dft = value_and_grads(dft_layer, x, cotangent, mask=mask)
    assert_close(y_dft, y)
    for got, want in zip([gx_dft, *gw_dft], [gx, *gw], strict=True):
        assert_close(got, want, "float32_grad", scale=True)


def test_auto_runs_the_dft_up_to_the_crossover(rng, monkeypatch):
    from spectralmix.backends import dft

    layer = _built_layer(rng, (3, 4), fft_impl="auto")
    reference = _built_layer(rng, (3, 4))
    reference.set_weights(layer.get_weights())
    calls = []
    original = dft.rdft_matrices
    monkeypatch.setattr(dft, "rdft_matrices", lambda *a, **k: calls.append(1) or original(*a, **k))
    monkeypatch.setitem(dft.CROSSOVER, BACKEND, 12)  # compared with the number of patches
    for tokens, used_dft in ((12, True), (16, False)):
        calls.clear()
        x = rng.standard_normal((2, tokens, 5)).astype("float32")
        assert_close(layer(x), to_numpy(reference(x)))
        assert bool(calls) == used_dft


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"grid_shape": (4,)}, ValueError, r"grid_shape=\(4,\)"),
        ({"grid_shape": (4, 0)}, ValueError, r"grid_shape=\(4, 0\)"),
        ({"grid_shape": (4, 2.0)}, ValueError, r"grid_shape=\(4, 2.0\)"),
        ({"grid_shape": "4x4"}, ValueError, "grid_shape='4x4'"),
        ({"class_token": "yes"}, TypeError, "class_token='yes'"),
        ({"max_sequence_length": 0}, ValueError, "max_sequence_length=0"),
        ({"fft_impl": "rfft2"}, ValueError, "fft_impl='rfft2'"),
        ({"real_initializer": "nope"}, ValueError, "real_initializer='nope'"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        GlobalFilter2D(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"rank 3.*input_shape=\(2, 16\)"):
        GlobalFilter2D()(np.ones((2, 16), "float32"))
    with pytest.raises(ValueError, match="int32"):
        GlobalFilter2D()(np.ones((1, 16, 4), "int32"))


def test_declarations():
    assert get_token_mixer("gfnet_2d") is GlobalFilter2D
    assert GlobalFilter2D.causal is False
    assert GlobalFilter2D.model_arguments == ("max_sequence_length",)
    layer = GlobalFilter2D()
    layer.build((None, 9, 4))
    paths = {v.path.split("/", 1)[1]: len(v.shape) for v in layer.weights}
    assert paths == {"filter_2d_real": 3, "filter_2d_imag": 3}
    assert dict(GlobalFilter2D.model_parallel_layout) == {
        "filter_2d_real": (None, None, "model"),
        "filter_2d_imag": (None, None, "model"),
    }


def test_flop_formula_by_hand():
    from spectralmix.flops import Tally

    # A class token and a 4 x 6 grid, 3 channels: K = 4 column bins. Per channel, rfft of 6
    # points on 4 rows (2.5·6·log2 6 = 38.8 -> 39 each) and a complex FFT of 4 points on 4
    # columns (5·4·2 = 40 each), twice (forward and inverse); a complex product (6) per
    # (row, column bin, channel); the class token's mean over 24 patches and 3 channels.
    tally = Tally()
    GlobalFilter2D.count_flops(tally, 25, 3, {"grid_shape": (4, 6), "max_sequence_length": 25})
    counts = tally.result().breakdown
    assert counts["fft"] == 3 * 2 * (4 * 39 + 4 * 40)
    assert counts["spectral_filter"] == 6 * 4 * 4 * 3
    assert counts["elementwise"] == 24 * 3
    # At another size (a 5 x 5 grid, K = 3): the transforms of the run-time grid.
    tally = Tally()
    GlobalFilter2D.count_flops(tally, 26, 3, {"grid_shape": (4, 6), "max_sequence_length": 25})
    rfft_5, cfft_5 = round(2.5 * 5 * math.log2(5)), round(5 * 5 * math.log2(5))
    assert tally.result().breakdown["fft"] == 3 * 2 * (5 * rfft_5 + 3 * cfft_5)
    with pytest.raises(ValueError, match="23 patch tokens form neither"):
        GlobalFilter2D.count_flops(Tally(), 24, 3, {"max_sequence_length": 26})


def test_vit_flop_count_through_the_model_counter():
    """`spectralmix.count_flops` of an FFTNetViT with "gfnet_2d": the mixer part by hand."""
    from spectralmix.flops import count_flops

    config = {
        "family": "fftnet_vit",
        "image_size": 8,
        "patch_size": 2,
        "num_channels": 1,
        "hidden_dim": 4,
        "num_layers": 1,
        "num_heads": 2,
        "mlp_ratio": 1.0,
        "num_classes": 3,
    }
    fnet = count_flops({**config, "token_mixer": "fnet"}, (8, 8, 1))
    gfnet = count_flops({**config, "token_mixer": "gfnet_2d"}, (8, 8, 1))
    # 16 patches on a 4 x 4 grid and a class token; K = 3 column bins, 4 channels.
    mixer = {
        "fft": 4 * 2 * (4 * 20 + 3 * 40),  # rfft of 4 points: 2.5·4·2 = 20
        "spectral_filter": 6 * 4 * 3 * 4,
        "elementwise": 16 * 4,
    }
    for category in gfnet.breakdown:
        difference = gfnet.breakdown[category] - fnet.breakdown[category]
        if category == "fft":
            difference += fnet.breakdown["fft"]  # FNet's own transform, counted by fnet
        assert difference == mixer.get(category, 0), category


def test_in_a_metaformer_block_by_hand(rng):
    """Pre-norm block with its MLP zeroed: `y = x + GF2D(LN(x))`."""
    block = MetaFormerBlock("gfnet_2d", {"grid_shape": (3, 3)}, norm_first=True)
    block.build((None, 10, 4))
    assert isinstance(block.mixer, GlobalFilter2D)
    assert block.mixer.class_token
    for v in block.mixer.weights:
        v.assign(rng.standard_normal(v.shape).astype("float32"))
    for w in (block.mlp_dense2.kernel, block.mlp_dense2.bias):
        w.assign(np.zeros(w.shape, "float32"))
    x = rng.standard_normal((2, 10, 4))
    normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    assert_close(block(x.astype("float32")), x + _oracle(block.mixer, normed), "float32_model")


def test_fftnet_vit_backbone_with_gfnet_2d_fits_and_runs_at_another_size(rng, tmp_path):
    from spectralmix.models import FFTNetViTBackbone, FFTNetViTImageClassifier

    backbone = FFTNetViTBackbone(
        image_size=8,
        patch_size=2,
        num_channels=1,
        hidden_dim=8,
        num_layers=2,
        num_heads=2,
        token_mixer="gfnet_2d",
    )
    mixer = backbone.get_layer("block_0").mixer
    assert isinstance(mixer, GlobalFilter2D)
    assert (mixer.class_token, mixer.grid_shape) == (True, (4, 4))
    model = FFTNetViTImageClassifier(backbone=backbone, num_classes=3)
    images = rng.standard_normal((8, 8, 8, 1)).astype("float32")
    labels = rng.integers(0, 3, size=(8,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    before = _weights(mixer)
    loss = model.fit(images, labels, epochs=1, batch_size=4, verbose=0).history["loss"][0]
    assert np.isfinite(loss)
    assert not np.array_equal(_weights(mixer)[0], before[0])
    larger = rng.standard_normal((2, 12, 12, 1)).astype("float32")  # a 6 x 6 grid
    assert np.isfinite(to_numpy(model(larger))).all()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(images)), to_numpy(model(images)), atol=1e-6)
