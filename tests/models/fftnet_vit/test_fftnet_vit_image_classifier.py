import keras
import numpy as np
import pytest

from spectralmix.models import FFTNetBackbone, FFTNetViTBackbone, FFTNetViTImageClassifier
from tests.helpers import BACKEND, assert_close, roundtrip, to_numpy

BACKBONE = dict(image_size=16, patch_size=4, hidden_dim=16, num_layers=2, num_heads=2)
NUM_CLASSES = 5


def _classifier(dtype=None, head_dropout=0.0, **backbone_kwargs):
    backbone = FFTNetViTBackbone(**{**BACKBONE, **backbone_kwargs}, dtype=dtype)
    return FFTNetViTImageClassifier(
        backbone=backbone, num_classes=NUM_CLASSES, head_dropout=head_dropout, dtype=dtype
    )


@pytest.mark.parametrize("token_mixer", ["fftnet", "fnet", "attention"])
def test_trains_saves_and_reloads(tmp_path, rng, token_mixer):
    model = _classifier(token_mixer=token_mixer, dropout=0.1, drop_path=0.1)
    x = rng.standard_normal((8, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 5, 8)
    model.compile(
        keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    before = to_numpy(model.get_layer("head").kernel).copy()
    loss = model.fit(x, y, epochs=2, batch_size=4, verbose=0).history["loss"]
    assert np.isfinite(loss).all()
    assert not np.array_equal(to_numpy(model.get_layer("head").kernel), before)
    loaded = roundtrip(model, tmp_path)
    assert isinstance(loaded, FFTNetViTImageClassifier)
    assert isinstance(loaded.backbone, FFTNetViTBackbone)
    assert loaded.get_config() == model.get_config()
    assert_close(loaded(x), to_numpy(model(x)), "float32_model")


def test_head_classifies_the_class_token(rng):
    model = _classifier()
    x = rng.standard_normal((2, 16, 16, 3)).astype("float32")
    states = to_numpy(model.backbone(x))
    head = model.get_layer("head")
    expected = states[:, 0] @ to_numpy(head.kernel) + to_numpy(head.bias)
    assert_close(model(x), expected, "float32_model")


def test_config_nests_the_serialized_backbone():
    model = _classifier(head_dropout=0.2)
    config = model.get_config()
    assert (config["num_classes"], config["head_dropout"]) == (NUM_CLASSES, 0.2)
    assert config["backbone"]["registered_name"] == "spectralmix>FFTNetViTBackbone"
    assert config["backbone"]["config"] == model.backbone.get_config()
    assert FFTNetViTImageClassifier.from_config(config).get_config() == config


def test_runs_at_other_image_sizes(rng):
    model = _classifier()
    for size in [(12, 12), (24, 24), (8, 20)]:
        logits = to_numpy(model(rng.standard_normal((2, *size, 3)).astype("float32")))
        assert logits.shape == (2, 5)
        assert np.isfinite(logits).all()
    with pytest.raises(ValueError, match="patch_size=4"):
        model(np.zeros((1, 18, 16, 3), "float32"))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_training(rng, policy):
    model = _classifier(dtype=policy)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.standard_normal((4, 16, 16, 3)).astype("float32")
    loss = model.fit(x, np.arange(4), verbose=0).history["loss"]
    assert np.isfinite(loss).all()
    spectral = model.backbone.get_layer("block_0").mixer
    assert spectral.dtype_policy.name == policy
    assert spectral.base_filter.dtype == "float32"


def test_preset_and_baseline_one_argument_away():
    vit = FFTNetViTImageClassifier.from_preset(
        "fftnet_vit_tiny_patch16_224", token_mixer="attention", num_layers=1, num_classes=3
    )
    assert vit.backbone.token_mixer == "attention"
    assert vit.backbone.num_layers == 1
    assert vit.num_classes == 3
    assert vit.backbone.hidden_dim == 192
    with pytest.raises(ValueError, match="Known presets"):
        FFTNetViTImageClassifier.from_preset("fftnet_vit_gigantic_patch16_224")


# `from_preset(name, dtype=...)` sets the whole model's policy, backbone included (a regression
# test: the backbone once stayed float32 under a bfloat16 head).
def test_preset_dtype_sets_the_whole_model():
    vit = FFTNetViTImageClassifier.from_preset(
        "fftnet_vit_tiny_patch16_224", num_layers=1, dtype="mixed_bfloat16"
    )
    assert vit.get_layer("head").dtype_policy.name == "mixed_bfloat16"
    assert vit.backbone.get_layer("block_0").dtype_policy.name == "mixed_bfloat16"


def test_bad_arguments():
    backbone = FFTNetViTBackbone(**BACKBONE)
    with pytest.raises(ValueError, match="num_classes=0"):
        FFTNetViTImageClassifier(backbone=backbone, num_classes=0)
    with pytest.raises(ValueError, match="head_dropout=1.5"):
        FFTNetViTImageClassifier(backbone=backbone, head_dropout=1.5)
    with pytest.raises(ValueError, match="image_size=20, patch_size=6"):
        _classifier(image_size=20, patch_size=6)
    sequence = FFTNetBackbone(
        vocabulary_size=5, max_sequence_length=8, hidden_dim=8, num_layers=1, num_heads=2
    )
    with pytest.raises(TypeError, match="must be a FFTNetViTBackbone instance"):
        FFTNetViTImageClassifier(backbone=sequence, num_classes=3)


def test_jit_compiled_fit(rng):
    model = _classifier()
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=BACKEND != "torch" or "auto",
    )
    x = rng.standard_normal((4, 16, 16, 3)).astype("float32")
    assert np.isfinite(model.fit(x, np.arange(4), verbose=0).history["loss"]).all()
