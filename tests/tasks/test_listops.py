import json
import os

import keras
import numpy as np
import pytest

from spectralmix.data import batches
from spectralmix.data import listops as data_lib
from spectralmix.registry import BUILT_IN, needs_token_grid
from spectralmix.tasks import checkpointing, listops

TINY = {"hidden_dim": 16, "num_layers": 1, "num_heads": 2}


@pytest.mark.parametrize("model", [name for name in BUILT_IN if not needs_token_grid(name)])
def test_the_models_differ_only_in_the_token_mixer(model):
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
        np.argmax(best.predict_on_batch(batches.pad([ids], 128))[0]) for ids in test.token_ids
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
    assert result["correct"] == round(result["accuracy"] * 48)
    assert result["ci95"] == [round(b, 4) for b in listops.wilson_interval(result["correct"], 48)]
    assert result["source"] == "file"
    assert result["data"] == test_file
    with pytest.raises(ValueError, match="exactly one"):
        listops.load()
    with pytest.raises(ValueError, match="path="):
        listops.load(path=str(tmp_path / "missing.keras"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"model": "lstm"}, "lstm"), ({"epochs": 0}, "epochs"), ({"learning_rate": -1.0}, "-1.0")],
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
    # The state's own count (metrics.json rounds it to 0.1 s, which a fast step rounds to 0).
    assert checkpointing.read_state(out)["train_cpu_seconds"] >= 1e-3
    resumed = listops.train(tiny_listops_dir, out, resume=True, **kwargs)
    assert resumed["steps"] == 1  # a stopped run stays stopped


def test_generated_evaluation_data_is_seeded_and_scored(tmp_path):
    from spectralmix.data import listops_generator

    data = listops.evaluation_data(generate=6, seed=3)
    assert data.source == {"source": "generated", "generate": 6, "seed": 3}
    again = listops.evaluation_data(generate=6, seed=3)
    other = listops.evaluation_data(generate=6, seed=4)
    pairs = zip(data.split.token_ids, again.split.token_ids, strict=True)
    assert all(np.array_equal(a, b) for a, b in pairs)
    pairs = zip(data.split.token_ids, other.split.token_ids, strict=True)
    assert not all(np.array_equal(a, b) for a, b in pairs)
    # The same examples as the generator's file for that seed, read back by the TSV reader.
    path = tmp_path / "fresh.tsv"
    listops_generator.write_tsv(listops_generator.generate(6, seed=3), path)
    written = data_lib.read_tsv(path)
    np.testing.assert_array_equal(data.split.labels, written.labels)
    for a, b in zip(data.split.token_ids, written.token_ids, strict=True):
        np.testing.assert_array_equal(a, b)
    assert data.split.lengths.min() > 500
    assert os.listdir(tmp_path) == ["fresh.tsv"]  # nothing else written

    model = listops.build_model("fnet", **TINY)
    result = listops.evaluate(model, data)
    assert result["n"] == 6
    assert result["accuracy"] == round(listops.accuracy(model, data.split), 4)
    assert result["source"] == "generated"
    assert (result["generate"], result["seed"]) == (6, 3)
    low, high = result["ci95"]
    assert 0 <= low <= result["accuracy"] <= high <= 1


def test_evaluation_data_needs_exactly_one_source(tiny_listops_dir):
    test_file = data_lib.split_path(tiny_listops_dir, "test")
    with pytest.raises(ValueError, match="exactly one"):
        listops.evaluation_data()
    with pytest.raises(ValueError, match="generate=5"):
        listops.evaluation_data(test_file, generate=5)
    with pytest.raises(ValueError, match="num_examples=0"):
        listops.evaluation_data(generate=0)
    with pytest.raises(TypeError, match="seed='1'"):
        listops.evaluation_data(generate=1, seed="1")
