"""spectralmix.tasks.recall: the MQAR task in the harness (query accuracy, masked loss)."""

import keras
import numpy as np
import pytest

from spectralmix.data import recall as data_lib
from spectralmix.tasks import harness, recall
from spectralmix.tasks.registry import make_task
from tests.tolerances import TOLERANCES

TINY = {"hidden_dim": 16, "num_layers": 1, "num_heads": 2, "mlp_ratio": 1.0}


class _Oracle:
    """A "model" whose logits put the most weight on `answer(tokens, targets)`."""

    def __init__(self, data, answer):
        self.data, self.answer = data, answer

    def predict_on_batch(self, tokens):
        index = [int(np.flatnonzero((self.data.inputs == row).all(axis=1))[0]) for row in tokens]
        predicted = self.answer(self.data.inputs[index], self.data.labels[index])
        return np.eye(recall.VOCABULARY_SIZE)[predicted]


def test_queries_answered_counts_right_answers_at_query_positions_only():
    data = recall.splits(64, sizes={"train": 1, "val": 1, "test": 5})["test"]
    queried = data.labels != data_lib.IGNORE
    right, asked = recall.queries_answered(_Oracle(data, lambda t, y: np.maximum(y, 0)), data, 2)
    np.testing.assert_array_equal(asked, queried.sum(axis=1))
    np.testing.assert_array_equal(right, asked)
    # Answer with the query's key (a key is never a value): nothing right, and what sits at
    # the other positions does not count.
    right, _ = recall.queries_answered(_Oracle(data, lambda t, y: t), data, 2)
    np.testing.assert_array_equal(right, 0)

    def first_right(tokens, targets):
        answers = np.where(targets == data_lib.IGNORE, tokens, targets)
        for row in answers:
            row[np.flatnonzero(targets[0] != data_lib.IGNORE)[1:]] = 1  # blank: wrong
        return answers

    right, _ = recall.queries_answered(_Oracle(data, first_right), data, 1)
    np.testing.assert_array_equal(right, 1)


def test_the_loss_counts_query_positions_only():
    keras.utils.set_random_seed(0)
    data = recall.splits(48, sizes={"train": 4, "val": 1, "test": 1})["train"]
    model = harness.compile_model(
        recall.token_tagger("fnet", length=48, **TINY),
        total_steps=1,
        learning_rate=1e-3,
        warmup_steps=0,
        weight_decay=0.0,
        metrics=(),
        ignore_class=harness.IGNORE_TARGET,
    )
    logits = np.asarray(model.predict_on_batch(data.inputs), np.float64)
    log_probabilities = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    queried = data.labels != data_lib.IGNORE
    picked = np.take_along_axis(log_probabilities, np.maximum(data.labels, 0)[..., None], -1)
    expected = -picked[..., 0][queried].mean()
    loss = float(model.evaluate(data.inputs, data.labels, verbose=0))
    np.testing.assert_allclose(loss, expected, rtol=TOLERANCES["float32_model"])
    # Counting every position instead would give another number.
    assert abs(-picked[..., 0].mean() - expected) > 0.01


@pytest.mark.parametrize("name", ["recall", "recall_256", "recall_4096", "recall_65536"])
def test_registered_at_several_lengths(name):
    task = make_task(name)
    length = 1024 if name == "recall" else int(name.split("_")[1])
    assert (task.name, task.sequence_length, task.metric) == (name, length, "query_accuracy")
    assert task.source["sizes"] == recall.split_sizes(length)


def test_train_reports_query_accuracy_picked_on_validation(tmp_path):
    task = recall.task(64, seed=1)
    metrics = harness.train(
        task,
        str(tmp_path / "run"),
        model="fnet",
        epochs=2,
        batch_size=8,
        limit=16,
        model_options=TINY,
        verbose=0,
    )
    assert metrics["metric"] == "query_accuracy"
    assert metrics["test_queries"] == 16 * recall.NUM_PAIRS
    low, high = metrics["test_ci95"]
    assert 0 <= low <= metrics["test_query_accuracy"] <= high <= 1
    assert 0 <= metrics["val_query_accuracy"] <= 1
