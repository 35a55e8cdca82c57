"""MetaFormerBlock: the residual block around any token mixer, against a NumPy composition."""

import math

import keras
import numpy as np
import pytest

from spectralmix import reference as R
from spectralmix.layers import FFTNetBlock, MetaFormerBlock, SelfAttention, metaformer_block
from tests.helpers import (
    BACKEND,
    assert_close,
    roundtrip,
    run_layer_test,
    spectral_filter_weights,
    to_numpy,
    value_and_grads,
    weights_by_name,
)

MIXERS = {  # name -> the mixer's own arguments
    "fftnet": {"num_heads": 2},
    "fnet": {},
    "attention": {"num_heads": 2},
}
_erf = np.vectorize(math.erf)


def _gelu(v):
    return 0.5 * v * (1.0 + _erf(v / math.sqrt(2.0)))


def _layer_norm(v, gamma, beta, epsilon):
    mean = v.mean(-1, keepdims=True)
    return (v - mean) / np.sqrt(v.var(-1, keepdims=True) + epsilon) * gamma + beta


def _attention(x, w, mask):
    """Softmax self-attention written out: heads from `(D, H, d)` kernels, keys masked."""
    q = np.einsum("bnd,dhk->bhnk", x, w["query/kernel"]) + w["query/bias"][None, :, None]
    k = np.einsum("bnd,dhk->bhnk", x, w["key/kernel"]) + w["key/bias"][None, :, None]
    v = np.einsum("bnd,dhk->bhnk", x, w["value/kernel"]) + w["value/bias"][None, :, None]
    scores = np.einsum("bhqk,bhsk->bhqs", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask[:, None, None, :], scores, -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = np.einsum("bhqs,bhsk->bqhk", probs, v)
    return (
        np.einsum("bqhk,hkd->bqd", context, w["attention_output/kernel"])
        + w["attention_output/bias"]
    )


def _mixer(name, x, named, mask):
    weights = {
        k[len("token_mixer/") :]: v for k, v in named.items() if k.startswith("token_mixer/")
    }
    if name == "attention":
        return _attention(x, weights, mask)
    keep = np.ones(x.shape[:2]) if mask is None else mask.astype(np.float64)
    if name == "fnet":
        spectrum = np.fft.fft2(x * keep[..., None], axes=(1, 2))
        return spectrum.real * keep[..., None]
    return R.adaptive_spectral_filter(
        x,
        num_heads=2,
        max_sequence_length=x.shape[1],
        variant="v1",
        modrelu_epsilon=1e-3,
        mask=mask,
        **spectral_filter_weights(weights),
    )


def _numpy_block(x, named, mixer, *, norm_first, mask=None, epsilon=1e-5):
    """Post-norm `h = LN1(x + mixer(x))` or pre-norm `h = x + mixer(LN1(x))`, then
    `y = h + Dense(GELU(Dense(LN2(h))))`; padded tokens zeroed on the way in and out."""
    keep = np.ones(x.shape[:2]) if mask is None else mask.astype(np.float64)
    x = x * keep[..., None]

    def norm(v, which):
        return _layer_norm(v, named[f"{which}/gamma"], named[f"{which}/beta"], epsilon)

    if norm_first:
        h = x + _mixer(mixer, norm(x, "norm1"), named, mask)
    else:
        h = norm(x + _mixer(mixer, x, named, mask), "norm1")
    hidden = _gelu(norm(h, "norm2") @ named["mlp_dense1/kernel"] + named["mlp_dense1/bias"])
    y = h + hidden @ named["mlp_dense2/kernel"] + named["mlp_dense2/bias"]
    return y * keep[..., None]


def _perturbed(rng, block, length=9, channels=8):
    block.build((None, length, channels))
    for v in block.weights:
        v.assign(to_numpy(v) + 0.2 * rng.standard_normal(v.shape).astype("float32"))
    return block


@pytest.mark.parametrize("mixer", sorted(MIXERS))
@pytest.mark.parametrize("norm_first", [False, True])
def test_matches_the_numpy_composition(rng, mixer, norm_first):
    block = MetaFormerBlock(mixer, MIXERS[mixer], mlp_ratio=1.5, norm_first=norm_first)
    block = _perturbed(rng, block)
    assert tuple(block.mlp_dense1.kernel.shape) == (8, 12)
    named = weights_by_name(block)
    x = rng.standard_normal((2, 9, 8))
    mask = np.ones((2, 9), bool)
    mask[1, 5:] = False
    for m in (None, mask):
        expected = _numpy_block(x, named, mixer, norm_first=norm_first, mask=m)
        assert_close(block(x.astype("float32"), mask=m), expected, "float32_model", scale=True)


def test_norm_placement_matters(rng):
    """Pre- and post-norm blocks with the same weights compute different functions."""
    post = _perturbed(rng, MetaFormerBlock("fnet"))
    pre = MetaFormerBlock("fnet", norm_first=True)
    pre.build((None, 9, 8))
    pre.set_weights(post.get_weights())
    x = rng.standard_normal((2, 9, 8)).astype("float32")
    assert np.abs(to_numpy(pre(x)) - to_numpy(post(x))).max() > 0.1


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_fftnet_block_is_the_metaformer_block_with_flat_arguments(rng, variant):
    fftnet = _perturbed(rng, FFTNetBlock(2, variant=variant, max_sequence_length=9))
    assert isinstance(fftnet, MetaFormerBlock)
    assert fftnet.norm_first == (variant == "v2")
    generic = MetaFormerBlock(
        "fftnet",
        {"num_heads": 2, "max_sequence_length": 9, "variant": variant},
        norm_first=variant == "v2",
    )
    generic.build((None, 9, 8))
    generic.set_weights(fftnet.get_weights())
    x = rng.standard_normal((2, 7, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(generic(x)), to_numpy(fftnet(x)))


@pytest.mark.parametrize("mixer", sorted(MIXERS))
@pytest.mark.parametrize("norm_first", [False, True])
def test_padded_content_never_reaches_real_outputs(rng, mixer, norm_first):
    block = _perturbed(rng, MetaFormerBlock(mixer, MIXERS[mixer], norm_first=norm_first))
    x = rng.standard_normal((2, 9, 8)).astype("float32")
    mask = np.ones((2, 9), bool)
    mask[0, 4:] = False
    noisy = x.copy()
    noisy[~mask] = 1e3
    y = to_numpy(block(x, mask=mask))
    assert_close(to_numpy(block(noisy, mask=mask))[mask], y[mask], "float32_op", scale=True)
    np.testing.assert_array_equal(y[~mask], 0.0)


def test_keras_mask_flows_from_an_embedding(rng):
    ids = rng.integers(1, 10, (2, 9))
    ids[1, 5:] = 0
    inputs = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 8, mask_zero=True, name="embedding")(inputs)
    block = MetaFormerBlock("attention", {"num_heads": 2}, name="block")
    outputs = block(embedded)
    model = keras.Model(inputs, outputs)
    embedding = to_numpy(model.get_layer("embedding")(ids))
    y = to_numpy(model(ids))
    assert_close(y, to_numpy(block(embedding, mask=ids != 0)))
    np.testing.assert_array_equal(y[1, 5:], 0.0)


def _instance_block(**kwargs):
    return MetaFormerBlock(SelfAttention(2, causal=True), norm_first=True, mlp_ratio=2.0, **kwargs)


def test_mixer_instance_round_trips_through_its_config(rng):
    block = _instance_block()
    config = block.get_config()
    assert config["token_mixer_kwargs"] is None
    assert config["token_mixer"]["registered_name"] == "spectralmix>SelfAttention"
    assert config["token_mixer"]["config"]["causal"] is True
    clone = MetaFormerBlock.from_config(config)
    assert clone.get_config() == config
    assert isinstance(clone.token_mixer, SelfAttention)
    assert clone.token_mixer is not block.token_mixer

    block = _perturbed(rng, block)
    clone.build((None, 9, 8))
    assert len(clone.weights) == len(block.weights) == 16  # the mixer's weights counted once
    clone.set_weights(block.get_weights())
    x = rng.standard_normal((2, 9, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(clone(x)), to_numpy(block(x)))


def test_mixer_instance_equals_the_mixer_by_name(rng):
    by_instance = _perturbed(rng, _instance_block())
    by_name = MetaFormerBlock(
        "attention", {"num_heads": 2, "causal": True}, norm_first=True, mlp_ratio=2.0
    )
    by_name.build((None, 9, 8))
    by_name.set_weights(by_instance.get_weights())
    x = rng.standard_normal((2, 9, 8)).astype("float32")
    assert_close(by_instance(x), to_numpy(by_name(x)))


def test_mixer_instance_saves_and_loads_in_a_keras_file(rng, tmp_path):
    inputs = keras.Input((None, 8))
    model = keras.Model(inputs, _instance_block(name="block")(inputs))
    for v in model.weights:
        v.assign(to_numpy(v) + 0.2 * rng.standard_normal(v.shape).astype("float32"))
    loaded = roundtrip(model, tmp_path)
    mixer = loaded.get_layer("block").mixer
    assert isinstance(mixer, SelfAttention)
    assert mixer.causal
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = rng.standard_normal((2, 9, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
    # The causal mixer makes the whole (per-token otherwise) block causal.
    perturbed = x.copy()
    perturbed[:, 6:] += rng.standard_normal((2, 3, 8)).astype("float32")
    assert_close(to_numpy(loaded(perturbed))[:, :6], to_numpy(loaded(x))[:, :6], "float32_op")


def test_token_mixer_kwargs_with_an_instance_is_rejected():
    with pytest.raises(ValueError, match=r"token_mixer_kwargs=\{'num_heads': 4\}"):
        MetaFormerBlock(SelfAttention(2), {"num_heads": 4})


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("attention", [("num_heads", 2)]), {}, TypeError, "token_mixer_kwargs="),
        (("mlp",), {}, ValueError, "token_mixer='mlp'"),
        (("fnet",), {"mlp_ratio": 0}, ValueError, "mlp_ratio=0"),
        (("fnet",), {"dropout": 1.0}, ValueError, "dropout=1.0"),
        (("fnet",), {"drop_path": -0.1}, ValueError, "drop_path=-0.1"),
        (("fnet",), {"norm_first": "yes"}, (ValueError, TypeError), "norm_first='yes'"),
        (("fnet",), {"layer_norm_epsilon": 0}, ValueError, "layer_norm_epsilon=0"),
    ],
)
def test_bad_arguments_are_named(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        MetaFormerBlock(*args, **kwargs)


def test_mixer_rejecting_its_arguments_is_named():
    block = MetaFormerBlock("fnet", {"num_heads": 2})
    # Keras layers reject unknown keyword arguments with a ValueError (the block rewords only
    # a TypeError, naming the mixer); either way the argument is named.
    with pytest.raises((TypeError, ValueError), match="num_heads"):
        block(np.zeros((1, 4, 8), "float32"))


def test_bad_inputs():
    with pytest.raises(ValueError, match="rank 3"):
        MetaFormerBlock("fnet")(np.ones((4, 8), "float32"))
    with pytest.raises(ValueError, match="int32"):
        MetaFormerBlock("fnet")(np.ones((1, 4, 8), "int32"))
    with pytest.raises(ValueError, match="num_heads=3"):
        MetaFormerBlock("attention", {"num_heads": 3})(np.ones((1, 4, 8), "float32"))


def test_initializers_reach_the_mixers_that_declare_them():
    block = MetaFormerBlock(
        "attention", {"num_heads": 2}, kernel_initializer="zeros", bias_initializer="ones"
    )
    block.build((None, 4, 8))
    np.testing.assert_array_equal(to_numpy(block.mixer.query_dense.kernel), 0.0)
    np.testing.assert_array_equal(to_numpy(block.mixer.query_dense.bias), 1.0)
    np.testing.assert_array_equal(to_numpy(block.mlp_dense1.kernel), 0.0)
    # A mixer's own initializer wins over the block's.
    own = MetaFormerBlock("attention", {"num_heads": 2, "kernel_initializer": "ones"})
    own.build((None, 4, 8))
    np.testing.assert_array_equal(to_numpy(own.mixer.query_dense.kernel), 1.0)
    # FNet declares none and takes none.
    MetaFormerBlock("fnet", kernel_initializer="zeros").build((None, 4, 8))


def test_config_round_trip():
    block = MetaFormerBlock(
        "fftnet",
        {"num_heads": 2, "variant": "v2", "fft_impl": "dft"},
        mlp_ratio=2.0,
        dropout=0.1,
        drop_path=0.2,
        norm_first=True,
        layer_norm_epsilon=1e-6,
    )
    config = block.get_config()
    assert config["token_mixer"] == "fftnet"
    assert config["token_mixer_kwargs"] == {"num_heads": 2, "variant": "v2", "fft_impl": "dft"}
    clone = MetaFormerBlock.from_config(config)
    assert clone.get_config() == config
    clone.build((None, 6, 8))
    assert (clone.mixer.variant, clone.mixer.fft_impl, clone.norm1.epsilon) == ("v2", "dft", 1e-6)


def test_dropout_and_drop_path_only_in_training(rng):
    block = MetaFormerBlock("fnet", dropout=0.5, drop_path=0.5)
    x = rng.standard_normal((4, 8, 4)).astype("float32")
    np.testing.assert_array_equal(to_numpy(block(x)), to_numpy(block(x, training=False)))
    assert not np.allclose(to_numpy(block(x, training=True)), to_numpy(block(x)))


@pytest.mark.parametrize("mixer", sorted(MIXERS))
def test_layer_contract_and_mixed_precision(tmp_path, mixer):
    policies = ["mixed_bfloat16", "mixed_float16"]
    if mixer == "attention" and BACKEND == "jax":
        # XLA:CPU has no float16 dot_general with float32 accumulation, which Keras's
        # MultiHeadAttention asks for (as in tests/layers/test_fftnet_block.py).
        policies.remove("mixed_float16")
    run_layer_test(
        lambda **kw: MetaFormerBlock(mixer, MIXERS[mixer], mlp_ratio=2.0, norm_first=True, **kw),
        (16, 8),
        tmp_path,
        expected_trainable={"fftnet": 14, "fnet": 8, "attention": 16}[mixer],
        policies=policies,
    )


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_mixer_follows_the_block(rng, policy):
    block = MetaFormerBlock("fftnet", {"num_heads": 2}, dtype=policy)
    y = block(rng.standard_normal((2, 8, 8)).astype("float32"))
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    assert block.mixer.dtype_policy.name == policy
    assert {keras.backend.standardize_dtype(w.dtype) for w in block.weights} == {"float32"}


@pytest.mark.parametrize("norm_first", [False, True])
def test_call_with_cache_equals_the_numpy_block_on_each_prefix(rng, norm_first):
    """Causal attention at position p sees tokens 0..p: the NumPy block on that prefix, at its
    last position. The cached block (a prompt of 3, steps, a chunk of 2) gives it in inference:
    dropout and drop path are off."""
    block = MetaFormerBlock(
        "attention",
        {"num_heads": 2, "causal": True},
        mlp_ratio=1.5,
        dropout=0.3,
        drop_path=0.2,
        norm_first=norm_first,
    )
    block = _perturbed(rng, block, length=8)
    named = weights_by_name(block)
    x = rng.standard_normal((2, 8, 8))
    expected = np.stack(
        [
            _numpy_block(x[:, : p + 1], named, "attention", norm_first=norm_first)[:, p]
            for p in range(8)
        ],
        axis=1,
    )
    cache = block.init_cache(2, 8)
    outputs, start = [], 0
    for length in (3, 1, 1, 2, 1):
        y, cache = block.call_with_cache(
            x[:, start : start + length].astype("float32"), cache, start
        )
        outputs.append(to_numpy(y))
        start += length
    assert_close(np.concatenate(outputs, axis=1), expected, "float32_model", scale=True)
    assert_close(np.concatenate(outputs, axis=1), to_numpy(block(x.astype("float32"))))


class _CausalWithoutCache(keras.layers.Layer):
    causal = True

    def call(self, inputs, mask=None, training=None):
        return keras.ops.cumsum(inputs, axis=1)


def test_cache_needs_a_causal_mixer_with_a_cache():
    from tests.helpers import registered_mixers

    bidirectional = MetaFormerBlock("fftnet", {"num_heads": 2})
    bidirectional.build((None, 8, 8))
    with pytest.raises(ValueError, match="'fftnet' .*is not causal"):
        bidirectional.init_cache(1, 8)
    not_causal = MetaFormerBlock("attention", {"num_heads": 2})
    not_causal.build((None, 8, 8))
    with pytest.raises(ValueError, match="'attention' .*is not causal"):
        not_causal.call_with_cache(np.zeros((1, 1, 8), "float32"), (), 0)
    with registered_mixers({"cumsum_example": _CausalWithoutCache}):
        block = MetaFormerBlock("cumsum_example")
        block.build((None, 8, 8))
        with pytest.raises(ValueError, match="'cumsum_example' .*has no call_with_cache"):
            block.init_cache(1, 8)
    with pytest.raises(ValueError, match="built first"):
        MetaFormerBlock("attention", {"num_heads": 2, "causal": True}).init_cache(1, 8)


@pytest.mark.parametrize(
    ("remat", "mixer", "norm_first"),
    [
        (True, "fftnet", False),
        (True, "fftnet", True),
        ("mixer", "attention", True),
        ("mlp", "fftnet", False),
    ],
)
def test_remat_keeps_outputs_and_gradients(rng, monkeypatch, remat, mixer, norm_first):
    # Chunks of 4 tokens over 2 x 9 = 18 rows: several chunks and a padded last one.
    monkeypatch.setattr(metaformer_block, "REMAT_CHUNK_TOKENS", 4)
    x = rng.standard_normal((2, 9, 8)).astype("float32")
    cotangent = rng.standard_normal(x.shape).astype("float32")
    mask = np.ones((2, 9), bool)
    mask[1, 6:] = False
    plain = _perturbed(rng, MetaFormerBlock(mixer, MIXERS[mixer], norm_first=norm_first))
    rematerialised = MetaFormerBlock(mixer, MIXERS[mixer], norm_first=norm_first, remat=remat)
    rematerialised.build(x.shape)
    rematerialised.set_weights(plain.get_weights())
    expected = value_and_grads(plain, x, cotangent, mask=mask, training=True)
    actual = value_and_grads(rematerialised, x, cotangent, mask=mask, training=True)
    assert_close(actual[0], expected[0])
    assert_close(actual[1], expected[1], "float32_grad", scale=True)
    assert len(actual[2]) == len(expected[2])
    for got, want in zip(actual[2], expected[2], strict=True):
        assert_close(got, want, "float32_grad", scale=True)


@pytest.mark.parametrize("norm_first", [False, True])
def test_remat_with_drop_path_keeps_outputs_and_gradients(rng, monkeypatch, norm_first):
    """With drop path in training the MLP alone is rematerialised (the drop draws outside it);
    the same seeds give both blocks the same drops."""
    monkeypatch.setattr(metaformer_block, "REMAT_CHUNK_TOKENS", 4)
    x = rng.standard_normal((2, 9, 8)).astype("float32")
    cotangent = rng.standard_normal(x.shape).astype("float32")
    blocks = []
    for remat in (False, True):
        block = MetaFormerBlock(
            "fftnet", MIXERS["fftnet"], drop_path=0.1, norm_first=norm_first, remat=remat
        )
        blocks.append(block)
    blocks[1].build(x.shape)
    blocks[1].set_weights(_perturbed(rng, blocks[0]).get_weights())
    for name in ("drop_path_mixer", "drop_path_mlp"):  # the same drops in both blocks
        state = getattr(blocks[0], name).seed_generator.state
        getattr(blocks[1], name).seed_generator.state.assign(to_numpy(state))
    expected, actual = (value_and_grads(b, x, cotangent, training=True) for b in blocks)
    assert_close(actual[0], expected[0])
    assert_close(actual[1], expected[1], "float32_grad", scale=True)
    for got, want in zip(actual[2], expected[2], strict=True):
        assert_close(got, want, "float32_grad", scale=True)


def test_remat_through_a_training_step(rng):
    """`fit`'s path (`training=True` in the compiled step): one SGD step moves every weight
    as without remat."""
    x = rng.standard_normal((2, 9, 8)).astype("float32")
    y = rng.standard_normal((2, 9, 8)).astype("float32")
    weights = []
    for remat in (False, True):
        block = FFTNetBlock(num_heads=2, remat=remat)
        block.build(x.shape)
        if weights:
            block.set_weights(weights[0][0])
        inputs = keras.Input((9, 8))
        model = keras.Model(inputs, block(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        before = [w.copy() for w in model.get_weights()]
        model.train_on_batch(x, y)
        weights.append((before, model.get_weights()))
    for plain, rematerialised in zip(weights[0][1], weights[1][1], strict=True):
        assert_close(rematerialised, plain)
    assert any(not np.allclose(a, b) for a, b in zip(*weights[0], strict=True))


def test_remat_config_round_trip():
    block = FFTNetBlock(num_heads=2, remat=True)
    config = block.get_config()
    assert config["remat"] == "full"
    assert FFTNetBlock.from_config(config).get_config() == config
    # Configs saved before `remat` existed load with it off.
    old = {k: v for k, v in MetaFormerBlock("fnet", remat="mlp").get_config().items()}
    assert old.pop("remat") == "mlp"
    assert MetaFormerBlock.from_config(old).remat is False


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"remat": "yes"}, "remat='yes'"),
        ({"remat": 1}, "remat=1"),
        ({"remat": True, "dropout": 0.1}, "dropout=0.1"),
        ({"remat": "mlp", "dropout": 0.1}, "dropout=0.1"),
    ],
)
def test_bad_remat_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MetaFormerBlock("fnet", **kwargs)


def test_remat_of_a_mixer_with_dropout_is_refused():
    # The MLP alone may be rematerialised beside a mixer's dropout; the mixer may not.
    MetaFormerBlock("attention", {"num_heads": 2, "dropout": 0.1}, remat="mlp").build((1, 4, 8))
    block = MetaFormerBlock("attention", {"num_heads": 2, "dropout": 0.1}, remat="mixer")
    with pytest.raises(ValueError, match="dropout=0.1"):
        block.build((1, 4, 8))
