"""CONTRIBUTING.md's two recipes, walked through from outside the package: a token mixer and a
task defined here, registered with one call each, run through a block, a model, the FLOP
counter, a saved file, the harness and the arena (whose child process imports this module to
find them), with no edit to spectralmix."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
from keras import ops

from spectralmix import count_flops
from spectralmix.layers import MetaFormerBlock, register_token_mixer, unregister_token_mixer
from spectralmix.models import FFTNetBackbone, FFTNetClassifier
from spectralmix.registry import token_mixer_names
from spectralmix.tasks import arena, harness
from spectralmix.tasks.registry import register_task, task_names, unregister_task
from tests.helpers import assert_close

MIXER, TASK = "toy_cumulative_mean", "toy_first_token"
LENGTH, VOCABULARY = 12, 6


class CumulativeMean(keras.layers.Layer):
    """Token `t` becomes the mean of the real tokens `≤ t` (a causal, weight-free mixer)."""

    causal = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None, training=None):
        weight = ops.ones_like(inputs[..., :1])
        if mask is not None:
            weight = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        total = ops.cumsum(inputs * weight, axis=1)
        count = ops.maximum(ops.cumsum(weight, axis=1), 1.0)
        return total / count

    @staticmethod
    def count_flops(tally, tokens, channels, arguments):
        tally.add("elementwise", 3 * tokens * channels)  # two running sums and a divide


def cumulative_mean_oracle(x: np.ndarray) -> np.ndarray:
    return np.cumsum(x, axis=1) / np.arange(1, x.shape[1] + 1)[None, :, None]


def make_toy_task(data=None, *, seed=0, test_examples=None) -> harness.Task:
    """Label = the first token's parity: a mixer must carry token 0 to the class token."""

    def load(limit):
        rng = np.random.default_rng(seed)
        splits = {}
        for split, size in (("train", 96), ("val", 32), ("test", 32)):
            ids = rng.integers(1, VOCABULARY, size=(size, LENGTH)).astype(np.int32)
            splits[split] = harness.ArrayData(ids[:limit], (ids[:, 0] % 2)[:limit])
        return splits

    return harness.Task(
        name=TASK,
        load=load,
        build_model=harness.sequence_classifier(
            TASK, vocabulary_size=VOCABULARY, num_classes=2, length=LENGTH
        ),
        model_defaults={"hidden_dim": 8, "num_layers": 1, "num_heads": 2, "mlp_ratio": 2.0},
        train_defaults={**harness.SHORT_TRAINING, "epochs": 2, "batch_size": 16},
        sequence_length=LENGTH,
    )


# The one registration call each; at import, so the arena's child process registers them too.
if MIXER not in token_mixer_names():
    register_token_mixer(MIXER)(CumulativeMean)
if TASK not in task_names():
    register_task(TASK)(make_toy_task)


@pytest.fixture(scope="module", autouse=True)
def _registered():
    yield
    unregister_token_mixer(MIXER)
    unregister_task(TASK)


def test_the_mixer_is_listed_and_computes_its_formula():
    assert MIXER in token_mixer_names()
    x = np.random.default_rng(0).normal(size=(2, LENGTH, 4)).astype("float32")
    assert_close(CumulativeMean()(x), cumulative_mean_oracle(x))


def test_a_block_and_a_model_use_the_mixer_by_name(tmp_path):
    x = np.random.default_rng(1).normal(size=(2, LENGTH, 8)).astype("float32")
    block = MetaFormerBlock(MIXER, mlp_ratio=2.0)
    assert tuple(block(x).shape) == x.shape
    assert isinstance(block.mixer, CumulativeMean)

    backbone = FFTNetBackbone(
        vocabulary_size=VOCABULARY,
        max_sequence_length=LENGTH,
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        token_mixer=MIXER,
        class_token=True,
    )
    model = FFTNetClassifier(backbone=backbone, num_classes=2)
    ids = np.random.default_rng(2).integers(1, VOCABULARY, size=(3, LENGTH))
    path = tmp_path / "toy.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert_close(loaded(ids), keras.ops.convert_to_numpy(model(ids)))
    # The FLOP counter reads the mixer's own formula: 3 per element and layer.
    flops = count_flops(model, (LENGTH,))
    assert flops.breakdown["elementwise"] >= 3 * (LENGTH + 1) * 8


def test_a_mixer_without_a_flop_formula_is_named():
    class NoFormula(keras.layers.Layer):
        def call(self, inputs, mask=None, training=None):
            return inputs

    register_token_mixer("toy_no_formula")(NoFormula)
    try:
        config = {"family": "fftnet", "vocabulary_size": 5, "max_sequence_length": 8}
        config.update(hidden_dim=4, num_layers=1, num_heads=1, token_mixer="toy_no_formula")
        with pytest.raises(ValueError, match="'toy_no_formula' .*declares no FLOP formula"):
            count_flops(config, (8,))
    finally:
        unregister_token_mixer("toy_no_formula")


def test_the_harness_trains_the_task_with_the_mixer(tmp_path):
    task = make_toy_task()
    metrics = harness.train(task, tmp_path / "run", model=MIXER, epochs=1, verbose=0)
    assert metrics["model"] == MIXER
    assert metrics["task"] == TASK
    assert metrics["test_examples"] == 32
    assert metrics["updates"] == 6


@pytest.mark.slow
def test_the_arena_runs_both_in_its_child_process(tmp_path):
    paths = arena.run([TASK], [MIXER], tmp_path, cpu_budget=60, verbose=0)
    with open(paths["results"], encoding="utf-8") as f:
        (cell,) = json.load(f)["cells"]
    assert cell["status"] == "done", cell
    assert (cell["task"], cell["model"]) == (TASK, MIXER)
    assert os.path.isfile(os.path.join(tmp_path, TASK, MIXER, "best.keras"))
