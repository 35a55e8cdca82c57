import keras
import numpy as np
import pytest

from spectralmix.models import FFTNetViTBackbone
from tests.helpers import assert_close, to_numpy

SMALL = dict(image_size=16, patch_size=4, hidden_dim=16, num_layers=2, num_heads=2)


@pytest.mark.parametrize("token_mixer", ["fftnet", "fnet", "attention"])
def test_outputs_class_token_plus_patches_at_any_size(token_mixer):
    backbone = FFTNetViTBackbone(**SMALL, token_mixer=token_mixer)
    assert tuple(backbone(np.zeros((2, 16, 16, 3), "float32")).shape) == (2, 17, 16)
    assert tuple(backbone(np.zeros((1, 24, 12, 3), "float32")).shape) == (1, 19, 16)


def test_filters_are_built_for_the_training_size():
    backbone = FFTNetViTBackbone(**SMALL)
    assert backbone.get_layer("block_0").mixer.max_sequence_length == 17
    assert backbone.get_layer("block_1").drop_path == 0.0


def test_config_round_trip_and_preset_drops_num_classes():
    backbone = FFTNetViTBackbone(
        **SMALL, drop_path=0.1, token_mixer_kwargs={"variant": "v2"}, norm_first=True
    )
    config = backbone.get_config()
    assert set(config) == {"name", "trainable", "dtype", *FFTNetViTBackbone.config_keys}
    assert (config["token_mixer_kwargs"], config["norm_first"]) == ({"variant": "v2"}, True)
    clone = FFTNetViTBackbone.from_config(config)
    assert clone.get_config() == config
    assert clone.get_layer("block_1").drop_path == pytest.approx(0.1)
    assert clone.get_layer("block_1").mixer.variant == "v2"
    assert clone.get_layer("block_1").norm_first
    tiny = FFTNetViTBackbone.from_preset("fftnet_vit_tiny_patch16_224", num_layers=1)
    assert tiny.hidden_dim == 192


def test_mixed_precision_outputs(rng):
    backbone = FFTNetViTBackbone(**SMALL, dtype="mixed_bfloat16")
    y = backbone(rng.standard_normal((2, 16, 16, 3)).astype("float32"))
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert np.isfinite(to_numpy(keras.ops.cast(y, "float32"))).all()


def test_legacy_config_is_refused_with_the_conversion_to_run():
    config = FFTNetViTBackbone(**SMALL).get_config()
    del config["token_mixer_kwargs"], config["norm_first"]
    config["variant"] = "v2"
    with pytest.raises(ValueError, match=r"FFTNetViTBackbone config .*convert_legacy_file"):
        FFTNetViTBackbone.from_config(config)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 30, "patch_size": 4}, "image_size=30, patch_size=4"),
        ({"hidden_dim": 10, "num_heads": 4}, "num_heads=4, hidden_dim=10"),
        ({"token_mixer": "mlp"}, "token_mixer='mlp'"),
        ({"num_layers": 0}, "num_layers=0"),
        ({"token_mixer_kwargs": "v2"}, "token_mixer_kwargs='v2'"),
        ({"norm_first": 1}, "norm_first=1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        FFTNetViTBackbone(**{**SMALL, **kwargs})


def test_remat_keeps_the_outputs_and_round_trips():
    plain = FFTNetViTBackbone(**SMALL)
    backbone = FFTNetViTBackbone(**SMALL, remat=True)
    backbone.set_weights(plain.get_weights())
    images = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
    assert_close(to_numpy(backbone(images)), to_numpy(plain(images)))
    config = backbone.get_config()
    assert config["remat"] == "full"
    assert backbone.get_layer("block_1").remat == "full"
    assert FFTNetViTBackbone.from_config(config).get_config() == config
    del config["remat"]  # saved before `remat` existed
    assert FFTNetViTBackbone.from_config(config).remat is False
    with pytest.raises(ValueError, match="remat='on'"):
        FFTNetViTBackbone(**SMALL, remat="on")
