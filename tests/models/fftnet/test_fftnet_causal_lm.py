"""FFTNetCausalLM: cached logits equal the full forward pass; generation streams bytes that a
full forward pass re-run on each prefix reproduces; save/load; what it refuses."""

import collections.abc

import keras
import numpy as np
import pytest

from spectralmix.models import (
    FFTNetBackbone,
    FFTNetCausalLM,
    causal_mixer_kwargs,
    causal_token_mixers,
)
from spectralmix.registry import get_token_mixer
from tests.helpers import assert_close, registered_mixers, roundtrip, to_numpy

LENGTH = 24
#: The causal mixers that can generate (a cache): attention, and hyena where registered.
GENERATING = [
    name for name in causal_token_mixers() if hasattr(get_token_mixer(name), "call_with_cache")
]


def _lm(token_mixer="attention", token_mixer_kwargs=None, dtype=None, **backbone_kwargs):
    backbone = FFTNetBackbone(
        **{
            "vocabulary_size": 257,
            "max_sequence_length": LENGTH,
            "hidden_dim": 16,
            "num_layers": 2,
            "num_heads": 2,
            "token_mixer": token_mixer,
            "token_mixer_kwargs": causal_mixer_kwargs(token_mixer, token_mixer_kwargs),
            "norm_first": True,
            "dtype": dtype,
            **backbone_kwargs,
        }
    )
    return FFTNetCausalLM(backbone=backbone, dtype=dtype)


def _perturb(model, rng, scale=0.3):
    """Weights moved off their initial values (zero biases, unit norms) so that each acts and
    the logits are far from uniform."""
    for v in model.weights:
        v.assign(to_numpy(v) + scale * rng.standard_normal(v.shape).astype("float32"))
    return model


def _cached_logits(lm, ids, chunks, index_type=int):
    cache = lm.init_cache(ids.shape[0], ids.shape[1])
    logits, start = [], 0
    for length in chunks:
        index = start if index_type is int else keras.ops.convert_to_tensor(start, "int32")
        step, cache = lm.call_with_cache(ids[:, start : start + length], cache, index)
        logits.append(to_numpy(step))
        start += length
    return np.concatenate(logits, axis=1)


def test_generating_mixers_include_attention():
    assert "attention" in GENERATING


@pytest.mark.parametrize("index_type", [int, "tensor"])
@pytest.mark.parametrize("token_mixer", GENERATING)
def test_cached_logits_equal_the_full_forward_pass(rng, token_mixer, index_type):
    lm = _perturb(_lm(token_mixer), rng)
    ids = rng.integers(1, 257, (2, 14)).astype("int32")
    cached = _cached_logits(lm, ids, [6, 1, 1, 1, 3, 1, 1], index_type)
    assert cached.dtype == np.float32
    assert_close(cached, to_numpy(lm(ids)), "float32_model", scale=True)


def _full_forward_generation(lm, prompt, count, temperature, seed):
    """The oracle of `generate`: the full model re-run on the whole sequence for every new
    byte, the byte drawn from the float64 softmax of its last logits over ids 1-256. (The
    sequence is filled up to the full length with byte 0, which the model may not see before
    the last position: test_causality.py; one shape keeps JAX from compiling every length.)"""
    rng = np.random.default_rng(seed)
    ids = [b + 1 for b in prompt]
    for _ in range(count):
        filled = np.ones((1, LENGTH), "int32")
        filled[0, : len(ids)] = ids
        logits = to_numpy(lm(filled))[0, len(ids) - 1, 1:].astype("float64")
        if temperature == 0:
            ids.append(int(np.argmax(logits)) + 1)
            continue
        p = np.exp((logits - logits.max()) / temperature)
        ids.append(int(rng.choice(256, p=p / p.sum())) + 1)
    return bytes(i - 1 for i in ids[len(prompt) :])


@pytest.mark.parametrize("token_mixer", GENERATING)
def test_greedy_generation_is_the_argmax_of_the_full_forward_pass(rng, token_mixer):
    lm = _perturb(_lm(token_mixer), rng)
    text = b"".join(lm.generate(b"Hello", max_new_bytes=12, temperature=0))
    assert len(text) == 12
    assert text == _full_forward_generation(lm, b"Hello", 12, 0, None)
    assert b"".join(lm.generate(b"Hello", max_new_bytes=12, temperature=0.0, seed=5)) == text


@pytest.mark.parametrize("token_mixer", GENERATING)
def test_sampling_follows_the_seeded_softmax(rng, token_mixer):
    lm = _perturb(_lm(token_mixer), rng)
    for temperature, seed in ((1.0, 0), (0.7, 3)):
        text = b"".join(lm.generate("Hé", max_new_bytes=10, temperature=temperature, seed=seed))
        expected = _full_forward_generation(lm, "Hé".encode(), 10, temperature, seed)
        assert text == expected
    assert b"".join(lm.generate(b"Hi", 10, seed=1)) != b"".join(lm.generate(b"Hi", 10, seed=2))


def test_generate_streams_one_byte_at_a_time(rng):
    lm = _perturb(_lm(), rng)
    stream = lm.generate(b"abc", max_new_bytes=3, temperature=0)
    assert isinstance(stream, collections.abc.Iterator)
    pieces = list(stream)
    assert [type(p) for p in pieces] == [bytes] * 3
    assert [len(p) for p in pieces] == [1, 1, 1]
    # The prompt and the new bytes fill the context exactly.
    assert len(b"".join(lm.generate(b"a" * 20, max_new_bytes=LENGTH - 20))) == LENGTH - 20


@pytest.mark.parametrize("token_mixer", GENERATING)
def test_save_and_load_keep_logits_and_generation(tmp_path, rng, token_mixer):
    lm = _perturb(_lm(token_mixer), rng)
    ids = rng.integers(1, 257, (2, 10)).astype("int32")
    text = b"".join(lm.generate(b"xyz", max_new_bytes=8, temperature=0))
    loaded = roundtrip(lm, tmp_path)
    assert isinstance(loaded, FFTNetCausalLM)
    assert isinstance(loaded.backbone, FFTNetBackbone)
    assert loaded.get_config() == lm.get_config()
    assert_close(loaded(ids), to_numpy(lm(ids)), "float32_model")
    assert b"".join(loaded.generate(b"xyz", max_new_bytes=8, temperature=0)) == text


def test_preset_directory_round_trip(tmp_path, rng):
    lm = _perturb(_lm(), rng)
    lm.save_to_preset(str(tmp_path / "preset"))
    loaded = FFTNetCausalLM.from_preset(str(tmp_path / "preset"))
    ids = rng.integers(1, 257, (1, 7)).astype("int32")
    assert_close(loaded(ids), to_numpy(lm(ids)), "float32_model")


def test_trains_on_next_byte_targets(rng):
    lm = _lm()
    ids = rng.integers(1, 257, (4, LENGTH + 1)).astype("int32")
    lm.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = lm.fit(ids[:, :-1], ids[:, 1:], epochs=2, batch_size=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()


def test_mixed_precision_gives_float32_logits(rng):
    lm = _lm(dtype="mixed_bfloat16")
    assert lm.backbone.get_layer("block_0").dtype_policy.name == "mixed_bfloat16"
    ids = rng.integers(1, 257, (1, 6)).astype("int32")
    assert keras.backend.standardize_dtype(lm(ids).dtype) == "float32"
    logits, _ = lm.call_with_cache(ids, lm.init_cache(1, 6), 0)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert len(b"".join(lm.generate(b"ab", max_new_bytes=4))) == 4


@pytest.mark.parametrize(
    ("token_mixer", "token_mixer_kwargs"),
    [("fftnet", {}), ("fnet", {}), ("attention", {})],
)
def test_a_bidirectional_backbone_is_refused_naming_the_mixer(token_mixer, token_mixer_kwargs):
    backbone = FFTNetBackbone(
        vocabulary_size=257,
        max_sequence_length=LENGTH,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        token_mixer=token_mixer,
        token_mixer_kwargs=token_mixer_kwargs,
    )
    with pytest.raises(ValueError, match=f"Token mixer '{token_mixer}' is not causal") as error:
        FFTNetCausalLM(backbone=backbone)
    message = str(error.value)
    assert "\n" not in message
    assert "'attention'" in message  # the causal mixers are listed


def test_a_class_token_backbone_is_refused():
    backbone = FFTNetBackbone(
        vocabulary_size=257,
        max_sequence_length=LENGTH,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        token_mixer="attention",
        token_mixer_kwargs={"causal": True},
        class_token=True,
    )
    with pytest.raises(ValueError, match="class_token=True"):
        FFTNetCausalLM(backbone=backbone)
    with pytest.raises(ValueError, match="class_token=True"):
        backbone.init_cache(1, 4)
    with pytest.raises(TypeError, match="backbone"):
        FFTNetCausalLM(backbone="attention")


def test_causal_mixer_kwargs():
    assert causal_mixer_kwargs("attention") == {"causal": True}
    assert causal_mixer_kwargs("attention", {"dropout": 0.1, "causal": True}) == {
        "dropout": 0.1,
        "causal": True,
    }
    with pytest.raises(ValueError, match="Received: token_mixer_kwargs=\\{'causal': False\\}"):
        causal_mixer_kwargs("attention", {"causal": False})
    for name in ("fftnet", "fnet"):
        with pytest.raises(ValueError, match=f"'{name}' is not causal"):
            causal_mixer_kwargs(name)
    with pytest.raises(ValueError, match="token_mixer='transformer'"):
        causal_mixer_kwargs("transformer")
    with pytest.raises(TypeError, match="token_mixer_kwargs"):
        causal_mixer_kwargs("attention", ["causal"])


class _CausalWithoutCache(keras.layers.Layer):
    causal = True

    def call(self, inputs, mask=None, training=None):
        return keras.ops.cumsum(inputs, axis=1)


def test_a_causal_mixer_without_a_cache_trains_but_cannot_generate(rng):
    with registered_mixers({"cumsum_lm_example": _CausalWithoutCache}):
        assert causal_mixer_kwargs("cumsum_lm_example", {}) == {}
        lm = _lm("cumsum_lm_example")
        assert tuple(lm(np.ones((1, 5), "int32")).shape) == (1, 5, 257)
        with pytest.raises(ValueError, match="'cumsum_lm_example' .*has no call_with_cache"):
            lm.generate(b"a", max_new_bytes=2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prompt": 5}, TypeError, "prompt=5 \\(int\\)"),
        ({"prompt": [104, 105]}, TypeError, "prompt=\\[104, 105\\]"),
        ({"prompt": b""}, ValueError, "prompt=b''"),
        ({"max_new_bytes": 0}, ValueError, "max_new_bytes=0"),
        ({"max_new_bytes": 2.5}, ValueError, "max_new_bytes=2.5"),
        ({"max_new_bytes": LENGTH}, ValueError, f"max_sequence_length \\({LENGTH}\\)"),
        ({"temperature": -0.5}, ValueError, "temperature=-0.5"),
        ({"temperature": float("nan")}, ValueError, "temperature=nan"),
        ({"seed": "one"}, TypeError, "seed='one'"),
    ],
)
def test_bad_generate_arguments_are_named_before_the_first_byte(kwargs, error, match):
    lm = _lm()
    with pytest.raises(error, match=match):
        lm.generate(**{"prompt": b"hi", "max_new_bytes": 4, **kwargs})


def test_generate_needs_the_byte_vocabulary():
    lm = _lm(vocabulary_size=20)
    assert tuple(lm(np.ones((1, 3), "int32")).shape) == (1, 3, 20)
    with pytest.raises(ValueError, match="vocabulary_size=20"):
        lm.generate(b"a", max_new_bytes=1)


def test_the_backbone_cache_stops_at_max_sequence_length(rng):
    backbone = _lm().backbone
    with pytest.raises(ValueError, match=f"max_sequence_length \\({LENGTH}\\).*max_length=25"):
        backbone.init_cache(1, LENGTH + 1)
    cache = backbone.init_cache(1, LENGTH)
    with pytest.raises(ValueError, match="cache_index=23, 2 tokens"):
        backbone.call_with_cache(np.ones((1, 2), "int32"), cache, LENGTH - 1)
