import keras
import numpy as np

from spectralmix.layers import ClassToken
from tests.helpers import assert_close, roundtrip, to_numpy


def test_prepends_the_learned_token(rng):
    layer = ClassToken(initializer="random_normal")
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    y = to_numpy(layer(x))
    assert y.shape == (2, 4, 4)
    np.testing.assert_array_equal(y[:, 1:], x)
    np.testing.assert_array_equal(y[0, 0], to_numpy(layer.token)[0, 0])
    np.testing.assert_array_equal(y[1, 0], y[0, 0])


def test_mask_gains_a_real_first_position():
    mask = np.array([[True, True, False], [True, False, False]])
    out = to_numpy(ClassToken().compute_mask(np.zeros((2, 3, 4), "float32"), mask))
    np.testing.assert_array_equal(out, [[1, 1, 1, 0], [1, 1, 0, 0]])
    assert ClassToken().compute_mask(np.zeros((2, 3, 4), "float32"), None) is None


def test_serialization_training_and_mixed_precision(tmp_path, rng):
    inputs = keras.Input((None, 4))
    outputs = keras.layers.Dense(1)(ClassToken(name="cls")(inputs)[:, 0])
    model = keras.Model(inputs, outputs)
    x = rng.standard_normal((4, 3, 4)).astype("float32")
    loaded = roundtrip(model, tmp_path)
    assert_close(loaded(x), to_numpy(model(x)))
    model.compile("sgd", "mse")
    before = to_numpy(model.get_layer("cls").token).copy()
    model.fit(x, np.ones((4, 1)), verbose=0)
    assert not np.array_equal(to_numpy(model.get_layer("cls").token), before)
    mixed = ClassToken(dtype="mixed_bfloat16")(x)
    assert keras.backend.standardize_dtype(mixed.dtype) == "bfloat16"
