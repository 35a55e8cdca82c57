import numpy as np
import pytest

from spectralmix.models import FFTNetBackbone
from tests.helpers import to_numpy

SMALL = dict(vocabulary_size=20, max_sequence_length=12, hidden_dim=16, num_layers=2, num_heads=2)


def test_padding_becomes_a_mask_through_every_layer():
    backbone = FFTNetBackbone(**SMALL, class_token=True)
    ids = np.array([[3, 4, 5, 0, 0], [6, 0, 0, 0, 0]])
    states = backbone(ids)
    mask = to_numpy(states._keras_mask)
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])


@pytest.mark.parametrize("length", [5, 12, 30])
def test_any_length(length):
    backbone = FFTNetBackbone(**SMALL)
    ids = np.random.default_rng(0).integers(1, 20, (2, length))
    out = to_numpy(backbone(ids))
    assert out.shape == (2, length, 16)
    assert np.isfinite(out).all()


def test_config_round_trip():
    backbone = FFTNetBackbone(**SMALL, token_mixer="fnet", variant="v2", dropout=0.1)
    assert FFTNetBackbone.from_config(backbone.get_config()).get_config() == (backbone.get_config())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocabulary_size": 0}, "vocabulary_size=0"),
        ({"max_sequence_length": None}, "max_sequence_length=None"),
        ({"num_heads": 3}, "num_heads=3, hidden_dim=16"),
        ({"class_token": 1}, "class_token=1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        FFTNetBackbone(**{**SMALL, **kwargs})


@pytest.mark.parametrize("token_mixer", ["fftnet", "fnet"])
def test_fft_impl_is_a_config_key_and_keeps_the_function(token_mixer):
    backbone = FFTNetBackbone(**SMALL, token_mixer=token_mixer)
    config = backbone.get_config()
    assert config["fft_impl"] == "fft"
    dft_backbone = FFTNetBackbone.from_config({**config, "fft_impl": "dft"})
    dft_backbone.set_weights(backbone.get_weights())
    assert dft_backbone.get_config()["fft_impl"] == "dft"
    ids = np.random.default_rng(0).integers(0, 20, (2, 11))
    np.testing.assert_allclose(
        to_numpy(dft_backbone(ids)), to_numpy(backbone(ids)), rtol=1e-4, atol=1e-4
    )
    with pytest.raises(ValueError, match="fft_impl='FFT'"):
        FFTNetBackbone(**SMALL, fft_impl="FFT")
