import json
import os

import keras
import numpy as np
import pytest

from spectralmix.tasks import checkpointing, harness
from tests.tolerances import TOLERANCES

TINY = {"hidden_dim": 8, "num_layers": 1, "num_heads": 2, "mlp_ratio": 1.0}
LENGTH = 16


def _toy_splits(limit=None):
    """Token ids 1-7 of a fixed length; the label says whether id 7 occurs."""
    rng = np.random.default_rng(0)
    splits = {}
    for name, n in (("train", 32), ("val", 16), ("test", 16)):
        ids = rng.integers(1, 8, size=(n, LENGTH)).astype(np.int32)
        labels = (ids == 7).any(axis=1).astype(np.int32)
        splits[name] = harness.ArrayData(ids[:limit], labels[:limit])
    return splits


def _toy_task(**changes):
    fields = {
        "name": "toy",
        "load": _toy_splits,
        "build_model": harness.sequence_classifier(
            "toy", vocabulary_size=8, num_classes=2, length=LENGTH
        ),
        "model_defaults": TINY,
        "train_defaults": {
            "epochs": 2,
            "batch_size": 8,
            "learning_rate": 1e-2,
            "warmup_steps": 0,
            "weight_decay": 0.0,
        },
        "sequence_length": LENGTH,
    }
    return harness.Task(**{**fields, **changes})


def _weights(path):
    return keras.saving.load_model(path).get_weights()


def test_train_reports_the_best_epoch_on_the_test_split_once(tmp_path):
    out = str(tmp_path / "run")
    metrics = harness.train(_toy_task(), out, verbose=0)
    assert metrics["task"] == "toy"
    assert metrics["steps"] == 2 * 4
    assert metrics["updates"] == 8
    assert (metrics["train_examples"], metrics["val_examples"], metrics["test_examples"]) == (
        32,
        16,
        16,
    )
    # The reported test score is the best checkpoint's, recounted here.
    best = keras.saving.load_model(os.path.join(out, checkpointing.BEST_FILE))
    test = _toy_splits()["test"]
    correct = int(np.sum(np.argmax(best.predict(test.inputs, verbose=0), -1) == test.labels))
    assert metrics["test_correct"] == correct
    assert metrics["test_accuracy"] == round(correct / 16, 4)
    assert metrics["test_ci95"] == [round(b, 4) for b in harness.wilson_interval(correct, 16)]
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f) == metrics
    assert metrics["arguments"]["model_options"] == TINY
    # A finished run is reusable under its own arguments only.
    assert harness.finished_metrics(_toy_task(), out, verbose=1) == metrics
    with pytest.raises(ValueError, match="other arguments"):
        harness.finished_metrics(_toy_task(), out, learning_rate=5e-3)
    assert harness.finished_metrics(_toy_task(), str(tmp_path / "nothing")) is None


#: A resumed run trains on the same batches in the same order from the saved weights and
#: optimizer state, so its weights equal an uninterrupted run's up to float32 rounding of the
#: recompiled step. Trained on another order (Keras's own reshuffle, before `fit(shuffle=
#: False)`), they differed by 4.1e-3 here (JAX).
RESUME_ATOL = TOLERANCES["float32_model"]


def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    task = _toy_task()
    whole = str(tmp_path / "whole")
    harness.train(task, whole, verbose=0)

    original = checkpointing.EpochCheckpoint.on_epoch_end

    class Killed(Exception):
        pass

    def kill_after_first_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            raise Killed

    split = str(tmp_path / "split")
    monkeypatch.setattr(checkpointing.EpochCheckpoint, "on_epoch_end", kill_after_first_epoch)
    with pytest.raises(Killed):
        harness.train(task, split, verbose=0)
    monkeypatch.undo()
    first = checkpointing.read_state(split)
    assert first["epochs_done"] == 1
    resumed = harness.train(task, split, resume=True, verbose=0)
    assert resumed["resumed_from_epoch"] == 1
    history = checkpointing.read_state(whole)["history"]
    assert checkpointing.read_state(split)["history"]["loss"][:1] == history["loss"][:1]
    for a, b in zip(
        _weights(os.path.join(whole, "epoch-0002.keras")),
        _weights(os.path.join(split, "epoch-0002.keras")),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=RESUME_ATOL)


def test_accumulated_micro_batches_make_the_updates_of_whole_batches():
    data = _toy_splits()["train"]
    trained = []
    for accumulate in (1, 2):
        keras.utils.set_random_seed(3)
        model = harness.compile_model(
            _toy_task().build_model("fftnet", **TINY),
            total_steps=4,
            learning_rate=1e-2,
            warmup_steps=0,
            weight_decay=0.01,
            accumulate=accumulate,
        )
        model.fit(data.inputs, data.labels, batch_size=8 // accumulate, shuffle=False, verbose=0)
        assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 4
        trained.append(model.get_weights())
    for a, b in zip(*trained, strict=True):
        np.testing.assert_allclose(a, b, rtol=TOLERANCES["float32_model"], atol=1e-6)


def test_train_records_accumulation_in_steps_and_updates(tmp_path, monkeypatch):
    counted = []
    count_correct = harness.count_correct

    def recording(model, data, batch_size, *args):
        counted.append(batch_size)
        return count_correct(model, data, batch_size, *args)

    monkeypatch.setattr(harness, "count_correct", recording)
    metrics = harness.train(_toy_task(), str(tmp_path / "r"), accumulate=2, epochs=1, verbose=0)
    assert (metrics["steps"], metrics["updates"]) == (8, 4)
    assert metrics["arguments"]["accumulate"] == 2
    # The test split is scored at the micro-batch the memory plan chose, not a larger one.
    assert counted == [4]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"accumulate": 3}, "accumulate=3, batch_size=8"),
        ({"augment": True}, "no augmentation"),
        ({"model": "lstm"}, "lstm"),
        ({"cpu_budget": 0}, "cpu_budget=0"),
        ({"learning_rate": float("nan")}, "learning_rate=nan"),
        ({"warmup_steps": -1}, "warmup_steps=-1"),
        ({"weight_decay": -0.1}, "weight_decay=-0.1"),
        ({"seed": -1}, "seed=-1"),
        ({"limit": 0}, "limit=0"),
    ],
)
def test_bad_arguments_name_the_value(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        harness.train(_toy_task(), str(tmp_path / "r"), verbose=0, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"augment": "False"}, "augment='False'"), ({"warmup_steps": "abc"}, "warmup_steps='abc'")],
)
def test_arguments_of_the_wrong_type_name_the_value(tmp_path, kwargs, message):
    # The text "False" is not read as a bool (it would be True): an ablation's variant
    # `augment=False` reaches the harness as text.
    with pytest.raises(TypeError, match=message):
        harness.train(_toy_task(), str(tmp_path / "r"), verbose=0, **kwargs)


def test_augmentation_is_applied_to_training_examples_only(tmp_path):
    seen = set()

    def augment(example, rng):
        seen.add(example.tobytes())
        return example

    harness.train(_toy_task(augment=augment), str(tmp_path / "r"), augment=True, verbose=0)
    splits = _toy_splits()
    rows = {name: {row.tobytes() for row in data.inputs} for name, data in splits.items()}
    assert seen == rows["train"]  # every training example, and nothing from val or test


def test_scored_needs_examples():
    assert harness.scored(3, 4) == {
        "accuracy": 0.75,
        "n": 4,
        "correct": 3,
        "ci95": [round(b, 4) for b in harness.wilson_interval(3, 4)],
    }
    with pytest.raises(ValueError, match="n=0"):
        harness.scored(0, 0)


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        # By hand, z = 1.959964: at 0/n the upper bound is z²/(n + z²), at n/n the lower bound
        # is n/(n + z²); at 5/10 the centre is 0.5 and the half-width
        # z·sqrt(0.025 + z²/400)/(1 + z²/10) = 0.26340.
        (0, 10, (0.0, 0.277533)),
        (10, 10, (0.722467, 1.0)),
        (5, 10, (0.236593, 0.763407)),
        # 767/2000 (the shipped preset's test score): p = 0.3835, z²/n = 0.00192072,
        # centre (0.3835 + 0.00096036)/1.00192072 = 0.383723, half-width 0.021291.
        (767, 2000, (0.362433, 0.405014)),
    ],
)
def test_wilson_interval_matches_hand_computed_bounds(successes, n, expected):
    low, high = harness.wilson_interval(successes, n)
    assert low == pytest.approx(expected[0], abs=1e-6)
    assert high == pytest.approx(expected[1], abs=1e-6)


@pytest.mark.parametrize(("successes", "n"), [(0, 1), (3, 7), (767, 2000), (1999, 2000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_interval_matches_scipy(successes, n, confidence):
    from scipy.stats import binomtest

    want = binomtest(successes, n).proportion_ci(confidence, method="wilson")
    got = harness.wilson_interval(successes, n, confidence)
    np.testing.assert_allclose(got, (want.low, want.high), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((3, 0), ValueError, "n=0"),
        ((4, 3), ValueError, "successes=4"),
        ((-1, 3), ValueError, "successes=-1"),
        ((1.0, 3), TypeError, "successes=1.0"),
        ((1, True), TypeError, "n=True"),
        ((1, 3, 1.5), ValueError, "confidence=1.5"),
    ],
)
def test_wilson_interval_rejects_bad_arguments(args, error, message):
    with pytest.raises(error, match=message):
        harness.wilson_interval(*args)


def test_bits_per_byte_interval_of_equal_documents_is_a_point():
    assert harness.bits_per_byte_interval([800.0, 400.0, 80.0], [100, 50, 10]) == (8.0, 8.0)


def test_bits_per_byte_interval_matches_the_normal_interval_of_many_documents():
    # Equal-length documents: the ratio is the mean of the per-document scores, whose 95%
    # interval is mean ± 1.96 sd / sqrt(n) for many documents (400 here, scores 1 apart).
    rng = np.random.default_rng(0)
    scores = rng.normal(3.0, 0.5, size=400)
    counts = np.full(400, 1000)
    low, high = harness.bits_per_byte_interval(scores * counts, counts, resamples=20_000)
    half = 1.959964 * scores.std(ddof=1) / np.sqrt(400)
    assert low == pytest.approx(scores.mean() - half, abs=0.005)
    assert high == pytest.approx(scores.mean() + half, abs=0.005)
    # Seeded: the same bounds again, other bounds with another seed.
    assert harness.bits_per_byte_interval(scores * counts, counts, resamples=20_000) == (
        low,
        high,
    )
    assert harness.bits_per_byte_interval(scores * counts, counts, seed=1) != (low, high)


def test_scored_bits_per_byte_is_total_bits_over_total_bytes():
    # Two documents of 100 and 300 bytes at 2 and 4 bits per byte: 1,400 / 400 = 3.5, not
    # the mean of the documents' scores (3.0).
    scored = harness.scored_bits_per_byte([200.0, 1200.0], [100, 300])
    assert scored["bits_per_byte"] == 3.5
    assert (scored["documents"], scored["bytes"]) == (2, 400)
    low, high = scored["ci95"]
    assert 2.0 <= low <= 3.5 <= high <= 4.0
    with pytest.raises(ValueError, match="0 documents"):
        harness.scored_bits_per_byte([], [])


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([1.0], [1, 2]), {}, r"Received: shapes \(1,\) and \(2,\)"),
        (([], []), {}, r"Received: shapes \(0,\) and \(0,\)"),
        (([1.0], [0]), {}, "counts > 0"),
        (([float("nan")], [1]), {}, "bits must be finite"),
        (([1.0], [1]), {"confidence": 1.0}, "confidence=1.0"),
        (([1.0], [1]), {"resamples": 0}, "resamples=0"),
    ],
)
def test_bits_per_byte_interval_rejects_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        harness.bits_per_byte_interval(*args, **kwargs)


def test_a_task_names_a_metric_the_harness_knows():
    with pytest.raises(ValueError, match="metric='perplexity'"):
        _toy_task(metric="perplexity")
    with pytest.raises(ValueError, match="needs its `batches` and `score`"):
        _toy_task(metric="bits_per_byte")


def test_a_task_can_refuse_a_mixer_before_anything_is_loaded(tmp_path):
    def refuse(model):
        if model == "fnet":
            raise ValueError(f"The toy task refuses it. Received: model={model!r}")

    def load(limit):
        raise AssertionError("loaded")

    task = _toy_task(check_model=refuse, load=load)
    with pytest.raises(ValueError, match="Received: model='fnet'"):
        harness.train(task, str(tmp_path / "r"), model="fnet", verbose=0)


def test_a_grid_mixer_enters_only_tasks_whose_tokens_are_a_grid(tmp_path):
    def load(limit):
        raise AssertionError("loaded")

    with pytest.raises(ValueError, match="not one .a sequence.*model='gfnet_2d'"):
        harness.train(_toy_task(load=load), str(tmp_path / "r"), model="gfnet_2d", verbose=0)
    harness.check_entry(_toy_task(token_grid=True), "gfnet_2d")  # 16 tokens: a 4x4 grid
    harness.check_entry(_toy_task(), "gfnet")  # a sequence mixer enters either


def test_a_grid_mixer_trains_on_a_grid_task(tmp_path):
    metrics = harness.train(
        _toy_task(token_grid=True), str(tmp_path / "r"), model="gfnet_2d", verbose=0
    )
    assert metrics["model"] == "gfnet_2d"
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


@pytest.mark.parametrize("accumulate", [1, 2])
def test_updates_trains_exactly_that_many_updates(tmp_path, accumulate):
    # 32 examples in batches of 8: 4 updates an epoch; 6 updates take 2 epochs, the second cut.
    metrics = harness.train(
        _toy_task(), str(tmp_path / "r"), updates=6, accumulate=accumulate, verbose=0
    )
    assert (metrics["updates"], metrics["steps"]) == (6, 6 * accumulate)
    assert metrics["scheduled_steps"] == 6 * accumulate
    assert metrics["arguments"]["updates"] == 6
    state = checkpointing.read_state(str(tmp_path / "r"))
    assert state["epochs_done"] == 2
    assert len(state["history"]["val_accuracy"]) == 2  # the cut epoch is validated too


def test_runs_without_updates_keep_their_arguments(tmp_path):
    metrics = harness.train(_toy_task(), str(tmp_path / "r"), epochs=1, verbose=0)
    assert "updates" not in metrics["arguments"]  # so runs made before it still resume
    with pytest.raises(ValueError, match="updates=0"):
        harness.train(_toy_task(), str(tmp_path / "s"), updates=0, verbose=0)


def test_classifiers_build_hyena_bidirectional():
    build = harness.sequence_classifier("toy", vocabulary_size=8, num_classes=2, length=LENGTH)
    model = build("hyena", **TINY)
    (mixer,) = {
        layer.__class__.__name__: layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if layer.__class__.__name__ == "HyenaOperator"
    }.values()
    assert mixer.causal is False
    causal = build("hyena", token_mixer_kwargs={"causal": True}, **TINY)
    assert all(
        layer.causal
        for layer in causal._flatten_layers(include_self=False, recursive=True)
        if layer.__class__.__name__ == "HyenaOperator"
    )


def test_a_tuning_trial_leaves_the_test_split_unread(tmp_path, monkeypatch):
    def read(*args, **kwargs):
        raise AssertionError("the test split was read")

    monkeypatch.setattr(harness, "count_correct", read)
    metrics = harness.train(_toy_task(), str(tmp_path / "r"), epochs=1, read_test=False, verbose=0)
    assert metrics["test_read"] is False
    assert "test_accuracy" not in metrics
    assert 0 <= metrics["val_accuracy"] <= 1
