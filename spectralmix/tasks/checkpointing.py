"""Resumable training: a checkpoint after every epoch, written so that a kill never leaves a
half-written or inconsistent one.

A run directory holds `state.json` (completed epochs, history, the current checkpoint's file
name, the best validation score) and the `.keras` files it names. Each epoch writes the new
`.keras` file under a temporary name, renames it into place, then replaces `state.json`
the same way; only then is the previous checkpoint deleted. Whatever moment a run is
killed at, `state.json` names a complete checkpoint and the epoch it was taken after.

`best.keras`, the model of the best validation score, is a copy of that epoch's checkpoint
made after `state.json` names the epoch as the best. A run killed between the two is
repaired when it resumes: the best epoch is then the last one, whose checkpoint is copied
again (`restore_best`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from typing import Any

import keras

STATE_FILE = "state.json"
BEST_FILE = "best.keras"


@contextlib.contextmanager
def _replacing(path: str, suffix: str = ""):
    """Yields a temporary path beside `path`; the file written there replaces `path` (an
    ordinary 0o644 file: mkstemp makes it private) when the block ends, or is removed when it
    raises, so `path` is never half-written."""
    handle, tmp = tempfile.mkstemp(
        dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-", suffix=suffix
    )
    os.close(handle)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file in the same directory and a rename."""
    with _replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        out.write(text)


def atomic_save_model(model: keras.Model, path: str) -> None:
    """`model.save(path)` (weights, config, optimizer state) through a temporary `.keras` file."""
    with _replacing(path, suffix=".keras") as tmp:
        model.save(tmp)


def atomic_copy(source: str, path: str) -> None:
    """Copies `source` to `path` through a temporary file in the same directory and a rename."""
    with _replacing(path) as tmp:
        shutil.copyfile(source, tmp)


def restore_best(run_dir: str, state: dict[str, Any]) -> None:
    """Makes `best.keras` the best epoch's model again when the best epoch is the last
    checkpointed one (a run killed after `state.json` named it, before the copy was made).
    An earlier best epoch's copy was completed before any later epoch started."""
    if state.get("checkpoint") and state.get("best_epoch") == state.get("epochs_done"):
        atomic_copy(os.path.join(run_dir, state["checkpoint"]), os.path.join(run_dir, BEST_FILE))


def read_state(run_dir: str) -> dict[str, Any] | None:
    """The run's state, or `None` when `run_dir` holds no checkpoint yet."""
    path = os.path.join(run_dir, STATE_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class CpuBudget(keras.callbacks.Callback):
    """Stops training at the end of the batch where the run's CPU time (process time, all
    threads, from `checkpoint.used_cpu_seconds()`) reaches `seconds`. The partial epoch is
    then validated and checkpointed like any other, and the state records the stop."""

    def __init__(self, checkpoint: EpochCheckpoint, seconds: float):
        super().__init__()
        self.checkpoint, self.seconds = checkpoint, seconds

    def on_train_batch_end(self, batch, logs=None):
        if self.checkpoint.used_cpu_seconds() >= self.seconds:
            self.checkpoint.state["stopped_by_budget"] = True
            self.model.stop_training = True


class UpdateBudget(keras.callbacks.Callback):
    """Stops training at the end of the batch that makes the run's `steps`-th step (resumes
    included): with gradient accumulation, `steps = updates · accumulate`. The partial epoch
    is validated and checkpointed like any other. Put it after `checkpoint`, which counts the
    steps."""

    def __init__(self, checkpoint: EpochCheckpoint, steps: int):
        super().__init__()
        self.checkpoint, self.steps = checkpoint, steps

    def on_train_batch_end(self, batch, logs=None):
        if self.checkpoint.steps_done() >= self.steps:
            self.model.stop_training = True


class ValidationScore(keras.callbacks.Callback):
    """Adds `logs[name] = score(model)` at the end of every epoch, for a validation score
    that `fit`'s own validation does not compute (e.g. bits per byte over whole documents).
    Put it before the `EpochCheckpoint` that monitors `name`: callbacks share the logs."""

    def __init__(self, name: str, score):
        super().__init__()
        self.name, self.score = name, score

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self.name] = float(self.score(self.model))


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model (with its optimizer state) and the run state after every epoch, and the
    best model by `monitor` as `best.keras`.

    Args:
        run_dir: the run directory (created if missing).
        state: the state to continue (from `read_state`) or `None` for a new run.
        monitor: the log key that picks the best epoch, e.g. `"val_accuracy"`.
        metadata: JSON-serialisable facts stored in the state (e.g. the run's arguments).
        mode: `"max"` (higher `monitor` is better, as accuracy) or `"min"` (lower is better,
            as bits per byte).
    """

    def __init__(self, run_dir: str, state=None, monitor="val_accuracy", metadata=None, mode="max"):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min'. Received: mode={mode!r}")
        self.run_dir = run_dir
        self.monitor = monitor
        self.mode = mode
        self.state = state or {
            "epochs_done": 0,
            "checkpoint": None,
            "history": {},
            "best": None,
            "best_epoch": None,
            "train_seconds": 0.0,
            "train_cpu_seconds": 0.0,
            "steps": 0,
            "stopped_by_budget": False,
            "metadata": metadata or {},
        }
        self._epoch_start = None
        self._cpu_start = None
        self._steps_this_epoch = 0
        os.makedirs(run_dir, exist_ok=True)
        if state is not None:
            restore_best(run_dir, state)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start, self._cpu_start = time.perf_counter(), time.process_time()
        self._steps_this_epoch = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps_this_epoch += 1

    def steps_done(self) -> int:
        """Training steps (batches) of this run so far, resumes included."""
        return self.state["steps"] + self._steps_this_epoch

    def used_cpu_seconds(self) -> float:
        """Process CPU time (all threads) spent training in this run, resumes included."""
        running = time.process_time() - self._cpu_start if self._cpu_start is not None else 0.0
        return self.state["train_cpu_seconds"] + running

    def on_epoch_end(self, epoch, logs=None):
        if self._epoch_start is not None:
            self.state["train_seconds"] += time.perf_counter() - self._epoch_start
            self.state["train_cpu_seconds"] += time.process_time() - self._cpu_start
            self._epoch_start = self._cpu_start = None
            self.state["steps"] += self._steps_this_epoch
        logs = {k: float(v) for k, v in (logs or {}).items()}
        state = self.state
        for key, value in logs.items():
            state["history"].setdefault(key, []).append(value)
        score = logs.get(self.monitor)
        better = score is not None and (
            state["best"] is None
            or (score > state["best"] if self.mode == "max" else score < state["best"])
        )
        if better:
            state["best"], state["best_epoch"] = score, epoch + 1
        name = f"epoch-{epoch + 1:04d}.keras"
        atomic_save_model(self.model, os.path.join(self.run_dir, name))
        previous, state["checkpoint"], state["epochs_done"] = state["checkpoint"], name, epoch + 1
        atomic_write_text(os.path.join(self.run_dir, STATE_FILE), json.dumps(state, indent=1))
        if better:  # after the state names it: a kill in between is repaired on resume
            atomic_copy(os.path.join(self.run_dir, name), os.path.join(self.run_dir, BEST_FILE))
        if previous and previous != name:
            os.remove(os.path.join(self.run_dir, previous))
