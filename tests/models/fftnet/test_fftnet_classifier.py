import keras
import numpy as np
import pytest

from spectralmix.models import FFTNetClassifier
from tests.helpers import assert_close, roundtrip, to_numpy

SMALL = dict(
    vocabulary_size=20,
    num_classes=4,
    max_sequence_length=16,
    hidden_dim=16,
    num_layers=2,
    num_heads=2,
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
    model = FFTNetClassifier(**SMALL, pooling=pooling, token_mixer=token_mixer, dropout=0.1)
    ids = _ids(rng)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.fit(ids, rng.integers(0, 4, 8), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(loss.history["loss"]).all()
    loaded = roundtrip(model, tmp_path)
    assert isinstance(loaded, FFTNetClassifier)
    assert_close(loaded(ids), to_numpy(model(ids)), "float32_model")


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_attention_baseline_ignores_trailing_padding(rng, pooling):
    """With masks honoured end to end, attention logits do not depend on padding length."""
    model = FFTNetClassifier(**SMALL, pooling=pooling, token_mixer="attention")
    ids = _ids(rng, length=16, real=9)
    assert_close(model(ids[:, :12]), to_numpy(model(ids)), "float32_model")


def test_mean_pooling_averages_real_tokens_only(rng):
    model = FFTNetClassifier(**SMALL, pooling="mean")
    ids = _ids(rng, real=6)
    states = to_numpy(model.backbone(ids))
    pooled = states[:, :6].mean(axis=1)
    head = model.get_layer("head")
    expected = pooled @ to_numpy(head.kernel) + to_numpy(head.bias)
    assert_close(model(ids), expected, "float32_model")


@pytest.mark.parametrize("length", [7, 16, 40])
def test_any_length(rng, length):
    model = FFTNetClassifier(**SMALL)
    logits = to_numpy(model(rng.integers(1, 20, (2, length))))
    assert logits.shape == (2, 4)
    assert np.isfinite(logits).all()


def test_mixed_precision_training(rng):
    model = FFTNetClassifier(**SMALL, dtype="mixed_bfloat16")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.fit(_ids(rng), rng.integers(0, 4, 8), verbose=0).history["loss"]
    assert np.isfinite(loss).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="pooling='max'"):
        FFTNetClassifier(**SMALL, pooling="max")
    with pytest.raises(ValueError, match="num_classes=0"):
        FFTNetClassifier(**{**SMALL, "num_classes": 0})
