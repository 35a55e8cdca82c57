import keras
import numpy as np
import pytest

from spectralmix.models import FFTNetViTImageClassifier
from tests.helpers import BACKEND, assert_close, roundtrip, to_numpy

SMALL = dict(image_size=16, patch_size=4, num_classes=5, hidden_dim=16, num_layers=2, num_heads=2)


@pytest.mark.parametrize("token_mixer", ["fftnet", "fnet", "attention"])
def test_trains_saves_and_reloads(tmp_path, rng, token_mixer):
    model = FFTNetViTImageClassifier(**SMALL, token_mixer=token_mixer, dropout=0.1, drop_path=0.1)
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
    assert_close(loaded(x), to_numpy(model(x)), "float32_model")


def test_runs_at_other_image_sizes(rng):
    model = FFTNetViTImageClassifier(**SMALL)
    for size in [(12, 12), (24, 24), (8, 20)]:
        logits = to_numpy(model(rng.standard_normal((2, *size, 3)).astype("float32")))
        assert logits.shape == (2, 5)
        assert np.isfinite(logits).all()
    with pytest.raises(ValueError, match="patch_size=4"):
        model(np.zeros((1, 18, 16, 3), "float32"))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_training(rng, policy):
    model = FFTNetViTImageClassifier(**SMALL, dtype=policy)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.standard_normal((4, 16, 16, 3)).astype("float32")
    loss = model.fit(x, np.arange(4), verbose=0).history["loss"]
    assert np.isfinite(loss).all()
    spectral = model.backbone.get_layer("block_0").mixer
    assert spectral.base_filter.dtype == "float32"


def test_preset_and_baseline_one_argument_away():
    vit = FFTNetViTImageClassifier.from_preset(
        "fftnet_vit_tiny_patch16_224", token_mixer="attention", num_layers=1, num_classes=3
    )
    assert vit.backbone.token_mixer == "attention"
    assert vit.num_classes == 3
    assert vit.backbone.hidden_dim == 192
    with pytest.raises(ValueError, match="Known presets"):
        FFTNetViTImageClassifier.from_preset("fftnet_vit_gigantic_patch16_224")


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes=0"):
        FFTNetViTImageClassifier(**{**SMALL, "num_classes": 0})
    with pytest.raises(ValueError, match="image_size=20, patch_size=6"):
        FFTNetViTImageClassifier(**{**SMALL, "image_size": 20, "patch_size": 6})


def test_jit_compiled_fit(rng):
    model = FFTNetViTImageClassifier(**SMALL)
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=BACKEND != "torch" or "auto",
    )
    x = rng.standard_normal((4, 16, 16, 3)).astype("float32")
    assert np.isfinite(model.fit(x, np.arange(4), verbose=0).history["loss"]).all()
