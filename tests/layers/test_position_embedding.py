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


def _spread(rows, span):
    layer = PositionEmbedding(rows, span=span)
    layer.build((None, span, 1))
    layer.position_embeddings.assign(10.0 * np.arange(rows, dtype="float32")[:, None])
    return layer


def test_fewer_rows_than_positions_are_spread_over_the_span():
    layer = _spread(3, 5)  # positions 0..4 at rows 0, 0.5, 1, 1.5, 2
    y = to_numpy(layer(np.zeros((1, 5, 1), "float32")))
    np.testing.assert_allclose(y[0, :, 0], [0.0, 5.0, 10.0, 15.0, 20.0], rtol=1e-6)
    # A shorter input gets the same vectors at its positions: nothing depends on the length.
    y = to_numpy(layer(np.zeros((1, 3, 1), "float32")))
    np.testing.assert_allclose(y[0, :, 0], [0.0, 5.0, 10.0], rtol=1e-6)
    np.testing.assert_allclose(to_numpy(layer.positions(2, 2))[:, 0], [10.0, 15.0], rtol=1e-6)
    start = keras.ops.convert_to_tensor(3, "int32")
    np.testing.assert_allclose(to_numpy(layer.positions(start, 2))[:, 0], [15.0, 20.0])
    # Longer than the span: resampled to the input's length, as without a span.
    y = to_numpy(layer(np.zeros((1, 9, 1), "float32")))
    np.testing.assert_allclose(y[0, :, 0], 20.0 * np.arange(9) / 8, rtol=1e-6, atol=1e-6)


def test_span_is_saved_and_old_configs_load_with_a_row_per_position(tmp_path):
    layer = PositionEmbedding(4, span=10)
    assert PositionEmbedding.from_config(layer.get_config()).span == 10
    old = {k: v for k, v in layer.get_config().items() if k != "span"}
    assert PositionEmbedding.from_config(old).span == 4
    run_layer_test(
        lambda **kw: PositionEmbedding(4, span=8, **kw), (8, 3), tmp_path, expected_trainable=1
    )


def test_bad_span():
    with pytest.raises(ValueError, match="span=3"):
        PositionEmbedding(4, span=3)
    with pytest.raises(ValueError, match="span=0"):
        PositionEmbedding(4, span=0)
