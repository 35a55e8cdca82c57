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


def test_longer_input_is_rejected_not_truncated():
    with pytest.raises(ValueError, match="sequence_length=9"):
        PositionEmbedding(8)(np.zeros((1, 9, 4), "float32"))
    with pytest.raises(ValueError, match="max_sequence_length=0"):
        PositionEmbedding(0)
