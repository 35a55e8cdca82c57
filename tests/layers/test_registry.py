"""The token-mixer registry seen from the layers: a mixer defined here, registered, listed,
used by name in MetaFormerBlock and FFTNetBlock, saved and loaded; bad mixers rejected. (The
registry's framework-free functions, `mixer_arguments` and the names, are tests/test_registry.py's.)
"""

import contextlib
import math
import re

import keras
import numpy as np
import pytest
from keras import ops

from spectralmix import registry
from spectralmix.layers import (
    AdaptiveSpectralFilter,
    FFTNetBlock,
    FourierMixing,
    MetaFormerBlock,
    SelfAttention,
    get_token_mixer,
    register_token_mixer,
    token_mixer_names,
    unregister_token_mixer,
)
from tests.helpers import assert_close, roundtrip, to_numpy

BUILT_IN = {"fftnet": AdaptiveSpectralFilter, "fnet": FourierMixing, "attention": SelfAttention}
TOY = "toy_shift"


class TokenShift(keras.layers.Layer):
    """A toy causal mixer: `y_t = scale * x_{t-1}`, `y_0 = 0`, padded inputs zeroed first."""

    causal = True

    def __init__(self, initial_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_scale = initial_scale

    def build(self, input_shape):
        self.scale = self.add_weight(
            shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.initial_scale),
            name="scale",
        )

    def call(self, inputs, mask=None, training=None):
        x = inputs
        if mask is not None:
            x = x * ops.expand_dims(ops.cast(mask, x.dtype), -1)
        return ops.pad(x[:, :-1], [[0, 0], [1, 0], [0, 0]]) * ops.cast(self.scale, x.dtype)

    def get_config(self):
        return {**super().get_config(), "initial_scale": self.initial_scale}


def _token_shift(x, scale):
    """NumPy form of `TokenShift`."""
    y = np.zeros_like(x)
    y[:, 1:] = x[:, :-1]
    return y * scale


@pytest.fixture
def toy():
    """`TokenShift` registered as "toy_shift" for one test, always unregistered after."""
    assert TOY not in token_mixer_names()
    cls = register_token_mixer(TOY)(TokenShift)
    try:
        yield cls
    finally:
        if TOY in token_mixer_names():
            unregister_token_mixer(TOY)


def test_built_ins_come_first_in_their_order():
    assert token_mixer_names()[:3] == ("fftnet", "fnet", "attention")
    for name, cls in BUILT_IN.items():
        assert get_token_mixer(name) is cls
        assert cls.token_mixer_name == name


def test_registered_mixer_is_listed_last_and_removed_by_unregister(toy):
    assert toy is TokenShift
    assert token_mixer_names()[-1] == TOY
    assert get_token_mixer(TOY) is TokenShift
    assert TokenShift.token_mixer_name == TOY
    assert registry.is_causal(TOY)
    assert not registry.is_causal("fftnet")
    # Registering makes the class loadable by Keras too, under its own module's name.
    assert keras.saving.get_registered_name(TokenShift) == f"{__name__}>TokenShift"
    assert keras.saving.get_registered_object(f"{__name__}>TokenShift") is TokenShift
    # The same class under the same name again is no error.
    assert register_token_mixer(TOY)(TokenShift) is TokenShift
    assert token_mixer_names().count(TOY) == 1
    unregister_token_mixer(TOY)
    assert TOY not in token_mixer_names()
    with pytest.raises(ValueError, match=f"Received: token_mixer='{TOY}'"):
        get_token_mixer(TOY)


def _zero_mlp(block):
    """Zeroes the block's MLP output, so that `y = h`: the mixer's residual branch alone."""
    for weight in (block.mlp_dense2.kernel, block.mlp_dense2.bias):
        weight.assign(np.zeros(weight.shape, "float32"))


def _layer_norm(x, epsilon=1e-5):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + epsilon)


@pytest.mark.parametrize("norm_first", [False, True])
def test_blocks_use_a_registered_mixer_by_name(toy, rng, norm_first):
    x = rng.standard_normal((2, 6, 4))
    scale = rng.standard_normal(4)
    blocks = [MetaFormerBlock(TOY, {"initial_scale": 0.5}, norm_first=norm_first)]
    if norm_first:
        blocks.append(FFTNetBlock(2, token_mixer=TOY, variant="v2"))
    else:
        blocks.append(FFTNetBlock(2, token_mixer=TOY))
    for block in blocks:
        block.build((None, 6, 4))
        assert type(block.mixer) is TokenShift
        assert block.token_mixer == TOY
        block.mixer.scale.assign(scale.astype("float32"))
        _zero_mlp(block)
        # LayerNorm gammas are 1 and betas 0 at initialization.
        if norm_first:
            expected = x + _token_shift(_layer_norm(x), scale)
        else:
            expected = _layer_norm(x + _token_shift(x, scale))
        assert_close(block(x.astype("float32")), expected, "float32_model", scale=True)
    assert to_numpy(blocks[0].mixer.scale).shape == (4,)
    assert blocks[0].mixer.initial_scale == 0.5
    # FFTNetBlock passes none of its flat filter arguments to a mixer that does not take them.
    assert blocks[1].token_mixer_kwargs == {}


def test_block_holding_a_registered_mixer_saves_and_loads(toy, tmp_path, rng):
    inputs = keras.Input((None, 4))
    hidden = MetaFormerBlock(TOY, {"initial_scale": 0.5}, name="meta")(inputs)
    outputs = FFTNetBlock(2, token_mixer=TOY, name="fftnet_block")(hidden)
    model = keras.Model(inputs, outputs)
    for v in model.weights:
        v.assign(to_numpy(v) + 0.3 * rng.standard_normal(v.shape).astype("float32"))
    x = rng.standard_normal((2, 7, 4)).astype("float32")
    loaded = roundtrip(model, tmp_path)
    for name in ("meta", "fftnet_block"):
        block = loaded.get_layer(name)
        assert type(block.mixer) is TokenShift
        np.testing.assert_array_equal(
            to_numpy(block.mixer.scale), to_numpy(model.get_layer(name).mixer.scale)
        )
    assert loaded.get_layer("meta").get_config() == model.get_layer("meta").get_config()
    assert loaded.get_layer("fftnet_block").get_config()["token_mixer"] == TOY
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


def test_registered_mixer_is_causal_inside_a_block(toy, rng):
    """The rest of the block acts per token, so the block inherits the mixer's causality."""
    block = MetaFormerBlock(TOY)
    x = rng.standard_normal((1, 8, 4)).astype("float32")
    perturbed = x.copy()
    perturbed[:, 5:] += 3.0 * rng.standard_normal((1, 3, 4))
    y, y_perturbed = to_numpy(block(x)), to_numpy(block(perturbed))
    np.testing.assert_array_equal(y_perturbed[:, :5], y[:, :5])
    assert np.abs(y_perturbed[:, 5:] - y[:, 5:]).max() > 1.0


def test_duplicate_name_with_another_class_names_both(toy):
    class OtherShift(TokenShift):
        pass

    with pytest.raises(
        ValueError, match=r"'toy_shift' is already registered to TokenShift.*OtherShift"
    ):
        register_token_mixer(TOY)(OtherShift)
    assert get_token_mixer(TOY) is TokenShift


def test_non_layers_are_rejected():
    class NotALayer:
        def call(self, inputs, mask=None, training=None):
            return inputs

    with pytest.raises(TypeError, match="keras.layers.Layer subclass.*'not_a_layer'.*NotALayer"):
        register_token_mixer("not_a_layer")(NotALayer)
    with pytest.raises(TypeError, match="keras.layers.Layer subclass"):
        register_token_mixer("an_instance")(TokenShift())
    assert "not_a_layer" not in token_mixer_names()
    assert "an_instance" not in token_mixer_names()


def test_call_without_mask_or_training_is_rejected():
    class NoMask(keras.layers.Layer):
        def call(self, inputs):
            return inputs

    class NoTraining(keras.layers.Layer):
        def call(self, inputs, mask=None):
            return inputs

    with pytest.raises(
        TypeError,
        match=r"NoMask.*call\(inputs, mask=None, training=None\).*"
        r"\['mask', 'training'\]",
    ):
        register_token_mixer("no_mask")(NoMask)
    with pytest.raises(TypeError, match=r"NoTraining.*lacks \['training'\]"):
        register_token_mixer("no_training")(NoTraining)
    assert not {"no_mask", "no_training"} & set(token_mixer_names())


def test_unknown_name_lists_every_registered_name(toy):
    for call in (
        lambda: get_token_mixer("conv"),
        lambda: MetaFormerBlock("conv"),
        lambda: FFTNetBlock(2, token_mixer="conv"),
    ):
        with pytest.raises(ValueError, match="token_mixer='conv'") as info:
            call()
        listed = re.search(r"one of (\[.*?\])", str(info.value)).group(1)
        # Other tests' mixers may be registered in this process too: all are listed.
        assert listed == str(list(token_mixer_names()))
        assert {"fftnet", "fnet", "attention", TOY} <= set(token_mixer_names())
    with pytest.raises(ValueError, match="token_mixer='conv'"):
        unregister_token_mixer("conv")
    with pytest.raises(ValueError, match="token_mixer=None"):
        get_token_mixer(None)


def _built_mixer(name):
    mixer = get_token_mixer(name)(**registry.mixer_arguments(name, None, num_heads=2))
    mixer.build((None, 9, 8))
    return mixer


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_model_parallel_layouts_name_real_weights_with_their_rank(name):
    mixer = _built_mixer(name)
    layout = get_token_mixer(name).model_parallel_layout
    paths = {v.path.split("/", 1)[1]: len(v.shape) for v in mixer.weights}
    for pattern, axes in layout.items():
        matched = [p for p in paths if re.fullmatch(pattern, p)]
        assert matched, (pattern, sorted(paths))
        assert all(paths[p] == len(axes) for p in matched), (pattern, axes, matched)
        assert list(axes).count("model") == 1
    if name == "fnet":
        assert dict(layout) == {}
        assert paths == {}


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_declared_model_arguments_are_constructor_arguments(name):
    mixer = get_token_mixer(name)
    declared = getattr(mixer, "model_arguments", ())
    assert set(declared) <= set(registry.MODEL_ARGUMENTS)
    for argument in declared:
        assert registry.takes_argument(mixer, argument), argument


def test_attention_training_bytes_grow_with_the_square_of_the_length():
    """Scores, probabilities and their gradient, float32, per head; and the boolean mask."""
    per_example = SelfAttention.training_bytes_per_example
    assert per_example(100, 4) == 3 * 4 * 4 * 100 * 100 + 100 * 100
    assert math.isclose(per_example(200, 4) / per_example(100, 4), 4.0)


def test_registering_never_replaces_a_spectralmix_layer_for_keras():
    """A user's mixer class named like a spectralmix layer must not take its place in Keras's
    registry (every saved model holding the spectralmix layer would load the user's class)."""
    built_in = keras.saving.get_registered_object("spectralmix>SelfAttention")
    assert built_in is SelfAttention

    class SelfAttention_(TokenShift):
        pass

    SelfAttention_.__name__ = SelfAttention_.__qualname__ = "SelfAttention"
    try:
        with contextlib.suppress(ValueError):  # refusing the clash is a fix too
            register_token_mixer("user_attention")(SelfAttention_)
        assert keras.saving.get_registered_object("spectralmix>SelfAttention") is SelfAttention
    finally:
        keras.saving.register_keras_serializable(package="spectralmix")(SelfAttention)
        if "user_attention" in token_mixer_names():
            unregister_token_mixer("user_attention")
