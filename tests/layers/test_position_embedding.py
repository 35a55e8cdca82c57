import keras
import numpy as np
import pytest

from spectralmix.layers import PositionEmbedding
from tests.helpers import run_layer_test, to_numpy


def test_adds_the_first_positions(rng):
    layer = PositionEmbedding(6)
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    y = to_numpy(layer(x))
    np.testing.assert_allclose(y, x + to_numpy(layer.position_embeddings)[:4], rtol=1e-6)


def test_layer_contract(tmp_path):
    run_layer_test(lambda **kw: PositionEmbedding(8, **kw), (8, 4), tmp_path, expected_trainable=1)


def test_variable_length_graph():
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, PositionEmbedding(8)(inputs))
    assert to_numpy(model(np.zeros((1, 5, 4), "float32"))).shape == (1, 5, 4)


def test_longer_input_gets_the_table_interpolated():
    layer = PositionEmbedding(3)
    layer.build((None, 3, 1))
    layer.position_embeddings.assign(np.array([[0.0], [10.0], [20.0]], "float32"))
    y = to_numpy(layer(np.zeros((1, 5, 1), "float32")))
    # 5 rows over 3 learned positions: positions 0, 0.5, 1, 1.5, 2.
    np.testing.assert_allclose(y[0, :, 0], [0.0, 5.0, 10.0, 15.0, 20.0], rtol=1e-6)


def test_bad_argument():
    with pytest.raises(ValueError, match="max_sequence_length=0"):
        PositionEmbedding(0)
