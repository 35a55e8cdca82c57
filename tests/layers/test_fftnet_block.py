import keras
import numpy as np
import pytest

from spectralmix import reference as R
from spectralmix.layers import FFTNetBlock
from tests.helpers import (
    BACKEND,
    assert_close,
    roundtrip,
    run_layer_test,
    spectral_filter_weights,
    to_numpy,
    weights_by_name,
)

MIXERS = ["fftnet", "fnet", "attention"]
#: FFTNetBlock's config in spectralmix 0.1: unchanged, so that saved blocks load as they are.
CONFIG_KEYS_0_1 = {
    "name",
    "trainable",
    "dtype",
    "num_heads",
    "mlp_ratio",
    "dropout",
    "drop_path",
    "token_mixer",
    "max_sequence_length",
    "variant",
    "adaptive",
    "fft_impl",
    "modrelu_epsilon",
    "layer_norm_epsilon",
    "kernel_initializer",
    "bias_initializer",
}


def _oracle_params(block):
    named = weights_by_name(block)
    params = {
        "norm1": (named["norm1/gamma"], named["norm1/beta"]),
        "norm2": (named["norm2/gamma"], named["norm2/beta"]),
        "mlp": [
            (named["mlp_dense1/kernel"], named["mlp_dense1/bias"]),
            (named["mlp_dense2/kernel"], named["mlp_dense2/bias"]),
        ],
    }
    if block.token_mixer == "fftnet":
        params["mixer"] = spectral_filter_weights(named, "token_mixer/")
    elif block.token_mixer == "attention":
        params["mixer"] = {
            f"{part}_{kind}": named[f"token_mixer/{part}/{kind}"]
            for part in ("query", "key", "value")
            for kind in ("kernel", "bias")
        }
        params["mixer"]["output_kernel"] = named["token_mixer/attention_output/kernel"]
        params["mixer"]["output_bias"] = named["token_mixer/attention_output/bias"]
    return params


def _perturbed_block(rng, **kwargs):
    block = FFTNetBlock(**{"num_heads": 2, "mlp_ratio": 2.0, **kwargs})
    block.build((None, 10, 8))
    for v in block.weights:
        v.assign(to_numpy(v) + 0.2 * rng.standard_normal(v.shape).astype("float32"))
    return block


@pytest.mark.parametrize("token_mixer", MIXERS)
@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_matches_oracle_with_mask(rng, token_mixer, variant):
    block = _perturbed_block(rng, token_mixer=token_mixer, variant=variant)
    x = rng.standard_normal((2, 10, 8)).astype("float32")
    mask = np.ones((2, 10), bool)
    mask[1, 6:] = False
    for m in (None, mask):
        expected = R.fftnet_block(
            x.astype(np.float64),
            _oracle_params(block),
            num_heads=2,
            token_mixer=token_mixer,
            variant=variant,
            max_sequence_length=10,
            modrelu_epsilon=block.modrelu_epsilon,
            mask=m,
        )
        assert_close(block(x, mask=m), expected, "float32_model", scale=True)


@pytest.mark.parametrize("token_mixer", MIXERS)
def test_padded_content_never_reaches_real_outputs(rng, token_mixer):
    block = _perturbed_block(rng, token_mixer=token_mixer)
    x = rng.standard_normal((2, 10, 8)).astype("float32")
    mask = np.ones((2, 10), bool)
    mask[0, 4:] = False
    noisy = x.copy()
    noisy[~mask] = 1e3
    y = to_numpy(block(x, mask=mask))
    np.testing.assert_allclose(to_numpy(block(noisy, mask=mask)), y, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(y[~mask], 0.0)


@pytest.mark.parametrize("token_mixer", MIXERS)
def test_layer_contract(tmp_path, token_mixer):
    policies = ["mixed_bfloat16", "mixed_float16"]
    if token_mixer == "attention" and BACKEND == "jax":
        # XLA:CPU has no float16 dot_general with float32 accumulation, which Keras's
        # MultiHeadAttention asks for; the spectral mixers do not hit it (docs/layers.md).
        policies.remove("mixed_float16")
    run_layer_test(
        lambda **kw: FFTNetBlock(2, mlp_ratio=2.0, token_mixer=token_mixer, **kw),
        (16, 8),
        tmp_path,
        expected_trainable={"fftnet": 14, "fnet": 8, "attention": 16}[token_mixer],
        policies=policies,
    )


@pytest.mark.parametrize("token_mixer", MIXERS)
def test_config_is_the_flat_one_of_0_1(token_mixer):
    block = FFTNetBlock(2, token_mixer=token_mixer, variant="v2", fft_impl="dft")
    config = block.get_config()
    assert set(config) == CONFIG_KEYS_0_1 | {"filter_bins", "remat"}  # flat, two added since
    assert (config["token_mixer"], config["variant"], config["fft_impl"]) == (
        token_mixer,
        "v2",
        "dft",
    )
    clone = FFTNetBlock.from_config(config)
    assert clone.get_config() == config
    assert clone.norm_first
    # Each flat argument reaches the mixer only if the mixer takes it.
    expected = {
        "fftnet": {
            "num_heads": 2,
            "variant": "v2",
            "adaptive": True,
            "fft_impl": "dft",
            "modrelu_epsilon": 1e-3,
            "filter_bins": None,
        },
        "fnet": {"fft_impl": "dft"},
        "attention": {"num_heads": 2},
    }[token_mixer]
    assert clone.token_mixer_kwargs == expected


def test_max_sequence_length_defaults_to_the_first_input_and_is_saved():
    block = FFTNetBlock(2)
    assert block.get_config()["max_sequence_length"] is None
    block(np.zeros((1, 11, 8), "float32"))
    assert block.get_config()["max_sequence_length"] == 11
    assert block.mixer.max_sequence_length == 11


def test_filter_bins_reaches_the_mixer_is_saved_and_old_configs_keep_their_bins():
    block = FFTNetBlock(2, max_sequence_length=64, filter_bins=5)
    block.build((None, None, 8))
    assert block.mixer.base_filter.shape == (2, 5)
    assert FFTNetBlock.from_config(block.get_config()).filter_bins == 5
    block = FFTNetBlock(2, max_sequence_length=10_000)
    block.build((None, None, 8))
    assert block.get_config()["filter_bins"] == 2049  # the default, recorded once built
    # Saved before `filter_bins` existed: one filter value per bin of its length.
    old = {k: v for k, v in block.get_config().items() if k != "filter_bins"}
    legacy = FFTNetBlock.from_config(old)
    legacy.build((None, None, 8))
    assert legacy.mixer.base_filter.shape == (2, 5001)


def test_sequence_model_with_embedding_mask_trains_and_reloads(tmp_path, rng):
    ids = rng.integers(1, 20, size=(16, 12))
    ids[:, 9:] = 0
    labels = (ids[:, 0] % 2).astype("int32")
    inputs = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(20, 16, mask_zero=True)(inputs)
    h = FFTNetBlock(4, max_sequence_length=12, dropout=0.1, drop_path=0.1)(h)
    h = FFTNetBlock(4, max_sequence_length=12, variant="v2")(h)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inputs, outputs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ids, labels, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    loaded = roundtrip(model, tmp_path)
    assert_close(loaded(ids), to_numpy(model(ids)), "float32_model")
    # Shorter and longer sequences than the filters were built for.
    assert to_numpy(model(ids[:, :7])).shape == (16, 2)
    assert to_numpy(model(np.concatenate([ids, ids], axis=1))).shape == (16, 2)


def test_dropout_and_drop_path_only_in_training(rng):
    block = FFTNetBlock(2, dropout=0.5, drop_path=0.5)
    x = rng.standard_normal((4, 8, 4)).astype("float32")
    np.testing.assert_array_equal(to_numpy(block(x)), to_numpy(block(x, training=False)))
    assert not np.allclose(to_numpy(block(x, training=True)), to_numpy(block(x)))


def test_compiled_fit(rng):
    x = rng.standard_normal((8, 8, 4)).astype("float32")
    inputs = keras.Input((8, 4))
    model = keras.Model(inputs, FFTNetBlock(2)(inputs))
    # jit_compile: XLA on jax/tensorflow, torch.compile (Dynamo) on torch.
    model.compile("adam", "mse", jit_compile=BACKEND != "torch" or "auto")
    loss = model.fit(x, x, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(loss).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_heads": 2, "token_mixer": "conv"}, "token_mixer='conv'"),
        ({"num_heads": 2, "dropout": 1.0}, "dropout=1.0"),
        ({"num_heads": 2, "drop_path": -0.1}, "drop_path=-0.1"),
        ({"num_heads": 2, "mlp_ratio": 0}, "mlp_ratio=0"),
        ({"num_heads": 2, "variant": "v9"}, "variant='v9'"),
        ({"num_heads": 2, "layer_norm_epsilon": -1}, "layer_norm_epsilon=-1"),
        ({"num_heads": 2, "modrelu_epsilon": "1e-3"}, "modrelu_epsilon='1e-3'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FFTNetBlock(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="num_heads=3"):
        FFTNetBlock(3, token_mixer="attention")(np.ones((1, 4, 8), "float32"))
    with pytest.raises(ValueError, match="rank 3"):
        FFTNetBlock(2)(np.ones((4, 8), "float32"))
    with pytest.raises(ValueError, match="int32"):
        FFTNetBlock(2)(np.ones((1, 4, 8), "int32"))


@pytest.mark.parametrize("token_mixer", ["fftnet", "fnet"])
def test_fft_impl_reaches_the_mixer(rng, token_mixer):
    block = _perturbed_block(rng, token_mixer=token_mixer)
    dft_block = FFTNetBlock.from_config({**block.get_config(), "fft_impl": "dft"})
    dft_block.build((None, 10, 8))
    dft_block.set_weights(block.get_weights())
    assert dft_block.mixer.fft_impl == "dft"
    x = rng.standard_normal((2, 9, 8)).astype("float32")
    assert_close(dft_block(x), to_numpy(block(x)), "float32_model")


def test_modrelu_epsilon_reaches_the_mixer_and_old_configs_load_exact():
    block = FFTNetBlock(2, modrelu_epsilon=0.25)
    block.build((None, 10, 8))
    assert block.mixer.modrelu_epsilon == 0.25
    assert FFTNetBlock.from_config(block.get_config()).modrelu_epsilon == 0.25
    legacy = {k: v for k, v in block.get_config().items() if k != "modrelu_epsilon"}
    assert FFTNetBlock.from_config(legacy).modrelu_epsilon == 0.0


def _authors_block(x, p, *, num_heads, variant, double_residual=True):
    """The authors' PyTorch FFTNet block (jacobfa/fft), written out in NumPy from its formulas:
    v1 (`fftnet_modules.py`, the commit before the paper's v1): the mixer returns
    `LN(x + irfft(modReLU(F · (W_base + tanh(MLP(mean x))))))`, modReLU dividing by
    `clamp(|z|, min=1e-3)`; the block adds `MLP(LN(·))`. v2 (`imgnet/fftnet_modules.py`): the
    mixer pre-norms, filters `F · W_base (1 + s) + (b + t)`, applies `GELU(|z|) / (|z| + 1e-6)`
    and returns `x + y`; the block adds `x` again, `x + mixer(x)`, then `MLP(LN(·))`."""
    erf = np.vectorize(__import__("math").erf)

    def gelu(v):
        return 0.5 * v * (1 + erf(v / np.sqrt(2)))

    def norm(v, gamma, beta):
        mean, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
        return (v - mean) / np.sqrt(var + 1e-5) * gamma + beta

    def mixer(v):
        b, n, d = v.shape
        m = p["mixer"]
        heads = v.reshape(b, n, num_heads, d // num_heads).transpose(0, 2, 1, 3)
        spectrum = np.fft.rfft(heads, axis=2, norm="ortho")  # (B, H, K, d)
        mod = gelu(v.mean(1) @ m["context_kernel"] + m["context_bias"])
        mod = mod @ m["modulation_kernel"] + m["modulation_bias"]
        k = n // 2 + 1
        if variant == "v1":
            w = m["base_filter"][None, :, :, None] + np.tanh(mod.reshape(b, num_heads, k, 1))
            z = spectrum * w
            z = (
                z
                * np.maximum(np.abs(z) + m["bias"][None, :, :, None], 0)
                / np.maximum(np.abs(z), 1e-3)
            )
        else:
            mod = mod.reshape(b, num_heads, k, 2)
            w = m["base_filter"][None, :, :, None] * (1 + mod[..., 0:1])
            z = spectrum * w + (m["bias"][None, :, :, None] + mod[..., 1:2])
            z = z * gelu(np.abs(z)) / (np.abs(z) + 1e-6)
        y = np.fft.irfft(z, n=n, axis=2, norm="ortho").transpose(0, 2, 1, 3).reshape(b, n, d)
        return y

    (k1, b1), (k2, b2) = p["mlp"]

    def mlp(v):
        return gelu(v @ k1 + b1) @ k2 + b2

    if variant == "v1":
        h = norm(x + mixer(x), *p["norm1"])
    else:
        h = x + mixer(norm(x, *p["norm1"]))
        h = h + x if double_residual else h  # their mixer's `x + y`, then the block's `x + ·`
    return h + mlp(norm(h, *p["norm2"]))


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_fidelity_to_the_authors_block(rng, variant):
    """v1 with the default modrelu_epsilon = 1e-3 is the authors' v1 block; v2 is the authors'
    later block less the duplicated residual `x` (their mixer returns `x + y` and their block
    adds `x` again), and with GELU(|z|) / |z| instead of GELU(|z|) / (|z| + 1e-6)."""
    block = _perturbed_block(rng, variant=variant)
    x = rng.standard_normal((2, 10, 8))
    params = _oracle_params(block)
    ours = to_numpy(block(x.astype("float32")))
    authors = _authors_block(x, params, num_heads=2, variant=variant, double_residual=False)
    assert_close(ours, authors, "float32_model", scale=True)
    if variant == "v2":
        doubled = _authors_block(x, params, num_heads=2, variant=variant)
        assert np.abs(doubled - ours).max() > 0.1
