import keras
import numpy as np
import pytest

from spectralmix.models import FFTNetBackbone, FFTNetClassifier, FFTNetViTBackbone
from tests.helpers import assert_close, roundtrip, to_numpy

BACKBONE = dict(
    vocabulary_size=20,
    max_sequence_length=16,
    hidden_dim=16,
    num_layers=2,
    num_heads=2,
)
NUM_CLASSES = 4


def _classifier(pooling="cls", dtype=None, dropout=0.0, **backbone_kwargs):
    """The classifier that spectralmix 0.1 built from the same flat arguments: a class token
    exactly for `"cls"` pooling, the backbone's dropout before the head."""
    backbone = FFTNetBackbone(
        **BACKBONE, class_token=pooling == "cls", dropout=dropout, dtype=dtype, **backbone_kwargs
    )
    return FFTNetClassifier(
        backbone=backbone,
        num_classes=NUM_CLASSES,
        pooling=pooling,
        head_dropout=dropout,
        dtype=dtype,
    )


def _ids(rng, batch=8, length=16, real=11):
    ids = rng.integers(1, 20, (batch, length))
    ids[:, real:] = 0
    return ids


@pytest.mark.parametrize(
    ("pooling", "token_mixer"),
    [("cls", "fftnet"), ("mean", "fftnet"), ("mean", "fnet"), ("cls", "attention")],
)
def test_trains_saves_and_reloads(tmp_path, rng, pooling, token_mixer):
    model = _classifier(pooling=pooling, token_mixer=token_mixer, dropout=0.1)
    ids = _ids(rng)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.fit(ids, rng.integers(0, 4, 8), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(loss.history["loss"]).all()
    loaded = roundtrip(model, tmp_path)
    assert isinstance(loaded, FFTNetClassifier)
    assert isinstance(loaded.backbone, FFTNetBackbone)
    assert loaded.get_config() == model.get_config()
    assert_close(loaded(ids), to_numpy(model(ids)), "float32_model")


def test_config_nests_the_serialized_backbone():
    model = _classifier(pooling="mean", dropout=0.1)
    config = model.get_config()
    assert {k: config[k] for k in FFTNetClassifier.config_keys} == {
        "num_classes": NUM_CLASSES,
        "pooling": "mean",
        "head_dropout": 0.1,
    }
    assert config["backbone"]["registered_name"] == "spectralmix>FFTNetBackbone"
    assert config["backbone"]["config"] == model.backbone.get_config()
    clone = FFTNetClassifier.from_config(config)
    assert clone.get_config() == config
    assert clone.backbone is not model.backbone


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_attention_baseline_ignores_trailing_padding(rng, pooling):
    """With masks honoured end to end, attention logits do not depend on padding length."""
    model = _classifier(pooling=pooling, token_mixer="attention")
    ids = _ids(rng, length=16, real=9)
    assert_close(model(ids[:, :12]), to_numpy(model(ids)), "float32_model")


def test_mean_pooling_averages_real_tokens_only(rng):
    model = _classifier(pooling="mean")
    ids = _ids(rng, real=6)
    states = to_numpy(model.backbone(ids))
    pooled = states[:, :6].mean(axis=1)
    head = model.get_layer("head")
    expected = pooled @ to_numpy(head.kernel) + to_numpy(head.bias)
    assert_close(model(ids), expected, "float32_model")


def test_cls_pooling_classifies_the_class_token(rng):
    model = _classifier(pooling="cls")
    ids = _ids(rng, real=6)
    states = to_numpy(model.backbone(ids))
    head = model.get_layer("head")
    expected = states[:, 0] @ to_numpy(head.kernel) + to_numpy(head.bias)
    assert_close(model(ids), expected, "float32_model")


def test_pooling_defaults_to_the_backbone_class_token():
    with_token = FFTNetBackbone(**BACKBONE, class_token=True)
    assert FFTNetClassifier(backbone=with_token, num_classes=3).pooling == "cls"
    without = FFTNetBackbone(**BACKBONE)
    assert FFTNetClassifier(backbone=without, num_classes=3).pooling == "mean"


@pytest.mark.parametrize("length", [7, 16, 40])
def test_any_length(rng, length):
    model = _classifier()
    logits = to_numpy(model(rng.integers(1, 20, (2, length))))
    assert logits.shape == (2, 4)
    assert np.isfinite(logits).all()


def test_mixed_precision_training(rng):
    model = _classifier(dtype="mixed_bfloat16")
    assert model.backbone.get_layer("block_0").dtype_policy.name == "mixed_bfloat16"
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.fit(_ids(rng), rng.integers(0, 4, 8), verbose=0).history["loss"]
    assert np.isfinite(loss).all()


def test_bad_arguments():
    backbone = FFTNetBackbone(**BACKBONE, class_token=True)
    with pytest.raises(ValueError, match="pooling='max'"):
        FFTNetClassifier(backbone=backbone, num_classes=4, pooling="max")
    with pytest.raises(ValueError, match="num_classes=0"):
        FFTNetClassifier(backbone=backbone, num_classes=0)
    with pytest.raises(ValueError, match="head_dropout=1.0"):
        FFTNetClassifier(backbone=backbone, num_classes=4, head_dropout=1.0)
    with pytest.raises(ValueError, match="pooling='cls'.*class_token=False"):
        FFTNetClassifier(backbone=FFTNetBackbone(**BACKBONE), num_classes=4, pooling="cls")
    vit = FFTNetViTBackbone(image_size=8, patch_size=4, hidden_dim=8, num_layers=1, num_heads=2)
    with pytest.raises(TypeError, match="must be a FFTNetBackbone instance"):
        FFTNetClassifier(backbone=vit, num_classes=4)
    with pytest.raises(TypeError, match="must be a FFTNetBackbone instance"):
        FFTNetClassifier(backbone=BACKBONE, num_classes=4)
