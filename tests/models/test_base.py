import keras
import pytest

from spectralmix.models.base import check_encoder_arguments, encoder


def test_encoder_stacks_blocks_with_rising_drop_path():
    inputs = keras.Input((9, 8))
    outputs = encoder(
        inputs,
        num_tokens=9,
        num_layers=3,
        num_heads=2,
        mlp_ratio=2.0,
        dropout=0.0,
        drop_path=0.2,
        token_mixer="fftnet",
        variant="v1",
        layer_norm_epsilon=1e-5,
        dtype=None,
    )
    model = keras.Model(inputs, outputs)
    rates = [model.get_layer(f"block_{i}").drop_path for i in range(3)]
    assert rates == pytest.approx([0.0, 0.1, 0.2])
    assert model.get_layer("block_0").mixer.max_sequence_length == 9
    assert isinstance(model.layers[-1], keras.layers.LayerNormalization)


def test_encoder_arguments_are_checked():
    assert check_encoder_arguments(8, 2, 2, "fnet", 0.1) == (8, 2, 2, "fnet", 0.1)
    assert check_encoder_arguments(10, 1, 4, "fnet", 0.0)[0] == 10  # fnet has no heads
    with pytest.raises(ValueError, match="num_heads=4, hidden_dim=10"):
        check_encoder_arguments(10, 1, 4, "fftnet", 0.0)
    with pytest.raises(ValueError, match="drop_path=2"):
        check_encoder_arguments(8, 1, 2, "fftnet", 2)
