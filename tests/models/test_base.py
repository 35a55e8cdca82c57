import keras
import pytest

from spectralmix.layers import AdaptiveSpectralFilter, FourierMixing, MetaFormerBlock, SelfAttention
from spectralmix.models import FFTNetBackbone, FFTNetViTBackbone
from spectralmix.models.base import check_encoder_arguments, encoder

ENCODER = dict(
    num_tokens=9,
    num_layers=3,
    num_heads=2,
    mlp_ratio=2.0,
    dropout=0.0,
    drop_path=0.2,
    token_mixer="fftnet",
    token_mixer_kwargs={},
    norm_first=False,
    layer_norm_epsilon=1e-5,
    dtype=None,
)


def _encoder_model(**kwargs):
    inputs = keras.Input((9, 8))
    return keras.Model(inputs, encoder(inputs, **{**ENCODER, **kwargs}))


def test_encoder_stacks_blocks_with_rising_drop_path():
    model = _encoder_model()
    rates = [model.get_layer(f"block_{i}").drop_path for i in range(3)]
    assert rates == pytest.approx([0.0, 0.1, 0.2])
    assert model.get_layer("block_0").mixer.max_sequence_length == 9
    assert isinstance(model.layers[-1], keras.layers.LayerNormalization)


@pytest.mark.parametrize(
    ("token_mixer", "mixer_class", "expected_kwargs"),
    [
        ("fftnet", AdaptiveSpectralFilter, {"num_heads": 2, "max_sequence_length": 9}),
        ("fnet", FourierMixing, {}),
        ("attention", SelfAttention, {"num_heads": 2}),
    ],
)
def test_encoder_gives_each_mixer_the_model_arguments_it_declares(
    token_mixer, mixer_class, expected_kwargs
):
    model = _encoder_model(token_mixer=token_mixer, norm_first=True)
    for i in range(3):
        block = model.get_layer(f"block_{i}")
        assert type(block) is MetaFormerBlock
        assert type(block.mixer) is mixer_class
        assert block.token_mixer_kwargs == expected_kwargs
        assert block.norm_first


def test_encoder_passes_token_mixer_kwargs_to_every_block():
    model = _encoder_model(token_mixer_kwargs={"variant": "v2", "modrelu_epsilon": 0.0})
    for i in range(3):
        mixer = model.get_layer(f"block_{i}").mixer
        assert (mixer.variant, mixer.modrelu_epsilon, mixer.num_heads) == ("v2", 0.0, 2)
    # The mixer's own `num_heads` wins over the model's.
    assert (
        _encoder_model(token_mixer_kwargs={"num_heads": 4}).get_layer("block_0").mixer.num_heads
        == 4
    )


def test_encoder_arguments_are_checked():
    assert check_encoder_arguments(8, 2, 2, "fnet", None) == (8, 2, 2, "fnet", {})
    assert check_encoder_arguments(8, 2, 2, "fftnet", {"variant": "v2"}) == (
        8,
        2,
        2,
        "fftnet",
        {"variant": "v2"},
    )
    assert check_encoder_arguments(10, 1, 4, "fnet", None)[0] == 10  # fnet has no heads
    with pytest.raises(ValueError, match="num_heads=4, hidden_dim=10"):
        check_encoder_arguments(10, 1, 4, "fftnet", None)
    # The heads the mixer gets are what must divide the width.
    assert check_encoder_arguments(10, 1, 4, "fftnet", {"num_heads": 2})[2] == 4
    with pytest.raises(ValueError, match="num_heads=3, hidden_dim=10"):
        check_encoder_arguments(10, 1, 2, "attention", {"num_heads": 3})
    with pytest.raises(ValueError, match="token_mixer='mlp'"):
        check_encoder_arguments(8, 1, 2, "mlp", None)
    with pytest.raises(TypeError, match="token_mixer_kwargs='v2'"):
        check_encoder_arguments(8, 1, 2, "fftnet", "v2")
    with pytest.raises(ValueError, match="num_layers=0"):
        check_encoder_arguments(8, 0, 2, "fftnet", None)


@pytest.mark.parametrize("backbone", [FFTNetBackbone, FFTNetViTBackbone])
def test_drop_path_is_checked_by_the_backbones(backbone):
    kwargs = {"vocabulary_size": 5, "max_sequence_length": 8}
    if backbone is FFTNetViTBackbone:
        kwargs = {"image_size": 8, "patch_size": 4}
    with pytest.raises(ValueError, match="drop_path=2"):
        backbone(**kwargs, hidden_dim=8, num_layers=1, num_heads=2, drop_path=2)
