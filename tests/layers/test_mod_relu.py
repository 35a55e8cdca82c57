import keras
import numpy as np
import pytest

from spectralmix import reference as R
from spectralmix.layers import ModReLU
from tests.helpers import BACKEND, assert_close, grad_of, roundtrip, to_numpy


def test_matches_oracle_and_hand_values(rng):
    layer = ModReLU()
    re, im = rng.standard_normal((2, 3, 5)).astype("float32")
    out = layer([re, im])
    np.testing.assert_allclose(to_numpy(layer.bias), -0.1)
    for actual, expected in zip(out, R.mod_relu(re, im, np.full(5, -0.1)), strict=True):
        assert_close(actual, expected)
    hand = ModReLU(bias_initializer=keras.initializers.Constant(-1.0))
    re, im = hand([np.array([[3.0, 0.0]], "float32"), np.array([[4.0, 0.0]], "float32")])
    np.testing.assert_allclose(to_numpy(re), [[2.4, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(to_numpy(im), [[3.2, 0.0]], rtol=1e-6)


def test_epsilon_hand_values_and_default():
    assert ModReLU().epsilon == 1e-3  # the authors' clamp
    layer = ModReLU(epsilon=1.0, bias_initializer=keras.initializers.Constant(0.2))
    re, im = layer([np.array([[0.5, 3.0]], "float32"), np.array([[0.0, 4.0]], "float32")])
    # |0.5| < 1: 0.5 * ReLU(0.7) / 1; |3+4i| = 5 >= 1: (3, 4) * ReLU(5.2) / 5
    np.testing.assert_allclose(to_numpy(re), [[0.35, 3.12]], rtol=1e-6)
    np.testing.assert_allclose(to_numpy(im), [[0.0, 4.16]], rtol=1e-6)


def test_gradients_finite_at_zero():
    layer = ModReLU()
    layer.build([(None, 4), (None, 4)])
    zeros = np.zeros((2, 4), "float32")

    def fn(re, im):
        out_re, out_im = layer([re, im])
        return out_re + out_im

    for g in grad_of(fn, [zeros, zeros], np.ones((2, 4)), BACKEND):
        assert np.isfinite(g).all()


def test_serialization_training_and_mixed_precision(tmp_path, rng):
    re_in, im_in = keras.Input((6,)), keras.Input((6,))
    re, im = ModReLU(name="act")([re_in, im_in])
    model = keras.Model([re_in, im_in], keras.layers.Concatenate()([re, im]))
    x = [rng.standard_normal((4, 6)).astype("float32") for _ in range(2)]
    loaded = roundtrip(model, tmp_path)
    assert_close(loaded(x), to_numpy(model(x)))
    model.compile("adam", "mse")
    before = to_numpy(model.get_layer("act").bias).copy()
    model.fit(x, np.ones((4, 12)), verbose=0)
    assert not np.array_equal(to_numpy(model.get_layer("act").bias), before)
    for policy in ("mixed_bfloat16", "mixed_float16"):
        layer = ModReLU(dtype=policy)
        out = layer(x)
        assert layer.bias.dtype == "float32"
        assert keras.backend.standardize_dtype(out[0].dtype) == policy.split("_")[1]
        assert_close(out[0], R.mod_relu(*x, np.full(6, -0.1))[0], policy, scale=True)


def test_config_round_trip():
    layer = ModReLU(epsilon=0.01, bias_initializer="zeros", bias_regularizer="l2")
    assert ModReLU.from_config(layer.get_config()).get_config() == layer.get_config()
    # A config saved before `epsilon` existed loads with the exact form it was trained with.
    legacy = {k: v for k, v in layer.get_config().items() if k != "epsilon"}
    assert ModReLU.from_config(legacy).epsilon == 0.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="list"):
        ModReLU()(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match="same shape"):
        ModReLU()([np.ones((2, 3), "float32"), np.ones((2, 4), "float32")])
    with pytest.raises(ValueError, match="int32"):
        ModReLU()([np.ones((2, 3), "int32"), np.ones((2, 3), "int32")])
    with pytest.raises(ValueError, match="epsilon=-1"):
        ModReLU(epsilon=-1)
