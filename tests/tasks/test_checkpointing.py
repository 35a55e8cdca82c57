import json
import os

import keras
import numpy as np
import pytest

from spectralmix.tasks import checkpointing


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = str(tmp_path / "state.json")
    checkpointing.atomic_write_text(path, '{"epochs_done": 1}')
    with pytest.raises(TypeError):
        checkpointing.atomic_write_text(path, None)
    assert json.loads((tmp_path / "state.json").read_text()) == {"epochs_done": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_every_epoch_leaves_one_complete_checkpoint_and_the_best(tmp_path):
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    callback = checkpointing.EpochCheckpoint(str(tmp_path), metadata={"run": "test"})
    model.fit(
        x, y, epochs=3, batch_size=16, validation_data=(x, y), callbacks=[callback], verbose=0
    )

    state = checkpointing.read_state(str(tmp_path))
    assert state["epochs_done"] == 3
    assert state["checkpoint"] == "epoch-0003.keras"
    assert len(state["history"]["val_accuracy"]) == 3
    assert state["best"] == max(state["history"]["val_accuracy"])
    assert state["metadata"] == {"run": "test"}
    assert state["train_seconds"] > 0
    assert state["steps"] == 12
    assert sorted(os.listdir(tmp_path)) == ["best.keras", "epoch-0003.keras", "state.json"]
    restored = keras.saving.load_model(str(tmp_path / "epoch-0003.keras"))
    for a, b in zip(restored.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # The optimizer state travels with the checkpoint: 3 epochs x 4 steps.
    assert int(restored.optimizer.iterations) == 12
    assert checkpointing.read_state(str(tmp_path / "empty")) is None


def test_mode_min_keeps_the_lowest_score_from_a_validation_callback(tmp_path):
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    scores = iter([3.0, 1.0, 2.0])  # the best is the second epoch's
    validation = checkpointing.ValidationScore("val_bits", lambda m: next(scores))
    callback = checkpointing.EpochCheckpoint(str(tmp_path), monitor="val_bits", mode="min")
    model.fit(x, y, epochs=3, batch_size=16, callbacks=[validation, callback], verbose=0)
    state = checkpointing.read_state(str(tmp_path))
    assert state["history"]["val_bits"] == [3.0, 1.0, 2.0]
    assert (state["best"], state["best_epoch"]) == (1.0, 2)
    with pytest.raises(ValueError, match="mode='lowest'"):
        checkpointing.EpochCheckpoint(str(tmp_path), mode="lowest")


def test_a_kill_before_the_best_copy_is_repaired_on_resume(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    run_dir = str(tmp_path)
    callback = checkpointing.EpochCheckpoint(run_dir)
    callback.set_model(model)
    callback.on_epoch_end(0, {"val_accuracy": 0.5})
    first = model.get_weights()
    model.set_weights([w + 1.0 for w in first])  # the second epoch's (better) model

    class Killed(Exception):
        pass

    def killed(source, path):
        raise Killed

    monkeypatch.setattr(checkpointing, "atomic_copy", killed)
    with pytest.raises(Killed):
        callback.on_epoch_end(1, {"val_accuracy": 0.6})
    monkeypatch.undo()
    state = checkpointing.read_state(run_dir)
    assert (state["best_epoch"], state["epochs_done"]) == (2, 2)
    stale = keras.saving.load_model(os.path.join(run_dir, checkpointing.BEST_FILE))
    np.testing.assert_array_equal(stale.get_weights()[0], first[0])  # the kill's damage
    checkpointing.EpochCheckpoint(run_dir, state)  # what a resumed run builds
    best = keras.saving.load_model(os.path.join(run_dir, checkpointing.BEST_FILE))
    for a, b in zip(best.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
