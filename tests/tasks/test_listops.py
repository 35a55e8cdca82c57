import json
import os

import keras
import numpy as np
import pytest

from spectralmix.data import listops as data_lib
from spectralmix.tasks import listops

TINY = {"hidden_dim": 16, "num_layers": 1, "num_heads": 2}


@pytest.mark.parametrize("model", listops.MODELS)
def test_the_three_models_differ_only_in_the_token_mixer(model):
    classifier = listops.build_model(model, **TINY)
    assert classifier.backbone.token_mixer == model
    assert classifier.backbone.max_sequence_length == data_lib.MAX_LENGTH
    assert classifier.backbone.vocabulary_size == data_lib.VOCABULARY_SIZE
    assert classifier.num_classes == 10


def test_train_checkpoints_reports_and_refuses_to_overwrite(tiny_listops_dir, tmp_path):
    out = str(tmp_path / "run")
    metrics = listops.train(tiny_listops_dir, out, epochs=2, verbose=0, model_options=TINY)
    assert metrics["epochs"] == 2
    assert metrics["best_epoch"] in (1, 2)
    assert metrics["steps"] == 2 * 5  # 160 examples, batches of 32 within length buckets
    assert metrics["test_examples"] == 48
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f) == metrics
    # The reported accuracy is the best checkpoint's, recomputed here one example at a time.
    # FFT mixers depend on the padded length, so each example is padded like the harness's
    # batches: to its 128-token bucket (the expressions are at most 60 tokens long).
    best = keras.saving.load_model(os.path.join(out, "best.keras"))
    test = data_lib.read_tsv(data_lib.split_path(tiny_listops_dir, "test"))
    predictions = [
        np.argmax(best.predict_on_batch(data_lib.pad([ids], 128))[0]) for ids in test.token_ids
    ]
    assert metrics["test_accuracy"] == round(float(np.mean(predictions == test.labels)), 4)

    with pytest.raises(ValueError, match="already holds a run"):
        listops.train(tiny_listops_dir, out, epochs=2, verbose=0, model_options=TINY)
    with pytest.raises(ValueError, match="arguments of the run"):
        listops.train(tiny_listops_dir, out, epochs=3, resume=True, verbose=0, model_options=TINY)
    again = listops.train(tiny_listops_dir, out, epochs=2, resume=True, model_options=TINY)
    assert again["resumed_from_epoch"] == 2
    assert again["test_accuracy"] == metrics["test_accuracy"]


def test_evaluate_and_load(tiny_listops_dir, tmp_path):
    model = listops.build_model("fnet", **TINY)
    path = str(tmp_path / "m.keras")
    model.save(path)
    test_file = data_lib.split_path(tiny_listops_dir, "test")
    result = listops.evaluate(listops.load(path=path), test_file)
    assert result["n"] == 48
    assert result["accuracy"] == round(listops.accuracy(model, data_lib.read_tsv(test_file)), 4)
    with pytest.raises(ValueError, match="exactly one"):
        listops.load()
    with pytest.raises(ValueError, match="path="):
        listops.load(path=str(tmp_path / "missing.keras"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"model": "lstm"}, "model"), ({"epochs": 0}, "epochs"), ({"learning_rate": -1.0}, "-1.0")],
)
def test_bad_arguments(tiny_listops_dir, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        listops.train(tiny_listops_dir, str(tmp_path / "r"), verbose=0, **kwargs)


def test_cpu_budget_stops_mid_epoch_and_the_stop_is_checkpointed(tiny_listops_dir, tmp_path):
    out = str(tmp_path / "run")
    kwargs = {"epochs": 2, "cpu_budget": 1e-3, "verbose": 0, "model_options": TINY}
    metrics = listops.train(tiny_listops_dir, out, **kwargs)
    # The budget is spent by the first batch: training stops there, after one step of five.
    assert metrics["steps"] == 1
    assert metrics["scheduled_steps"] == 10
    assert metrics["stopped_by_budget"] is True
    assert metrics["best_epoch"] == 1
    assert metrics["train_cpu_seconds"] >= 1e-3
    resumed = listops.train(tiny_listops_dir, out, resume=True, **kwargs)
    assert resumed["steps"] == 1  # a stopped run stays stopped
