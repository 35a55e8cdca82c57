"""LRA ListOps end to end: FFTNet, the attention Transformer and FNet in one harness.

`train` fits an `FFTNetClassifier` (`model="fftnet"|"attention"|"fnet"`: only the token mixer
differs) on `basic_train`, picks the epoch by `basic_val` accuracy and reports `basic_test`
accuracy, through the task-independent `spectralmix.tasks.harness`: batches bucketed by
length, each epoch checkpointed (`spectralmix.tasks.checkpointing`), and `resume=True` to
continue an interrupted run from its last completed epoch with the optimizer state and
learning-rate schedule where they were.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import numpy as np

from spectralmix.data import listops as data_lib
from spectralmix.tasks import harness
from spectralmix.tasks.harness import wilson_interval  # noqa: F401  (re-exported)
from spectralmix.tasks.registry import register_task

#: The harness's model size and training (the same for every token mixer). LRA's ListOps
#: Transformer is far wider (512 wide, 4 layers); this size trains on a 2-core CPU at about 8
#: minutes per epoch of 20,000 examples (FFTNet, JAX). Regularisation is by augmentation
#: (`augment`: every operator's arguments reordered each epoch) rather than dropout. At width
#: 32 with 2 blocks, every variant plateaued at 36% test accuracy (docs/listops.md,
#: "Experiments"). This size, trained with augmentation for 5 epochs, reached 38.35%.
MODEL_DEFAULTS: dict[str, Any] = {
    "hidden_dim": 48,
    "num_layers": 4,
    "num_heads": 4,
    "mlp_ratio": 2.0,
    "dropout": 0.0,
    "pooling": "cls",
}
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 5,
    "batch_size": 32,
    "learning_rate": 2e-3,
    "warmup_steps": 200,
    "weight_decay": 0.05,
    "augment": True,
}


_build = harness.sequence_classifier(
    "listops",
    vocabulary_size=data_lib.VOCABULARY_SIZE,
    num_classes=data_lib.NUM_CLASSES,
    length=data_lib.MAX_LENGTH,
)


def build_model(model: str = "fftnet", **overrides):
    """An uncompiled `FFTNetClassifier` of the harness size with `model`'s token mixer."""
    return _build(model, **{**MODEL_DEFAULTS, **overrides})


def task(data: str | os.PathLike) -> harness.Task:
    """The ListOps task for the harness: the splits `DATA/basic_{train,val,test}.tsv[.gz]`,
    `build_model`, the defaults above, and argument reordering as its augmentation."""
    paths = {name: data_lib.split_path(data, name) for name in data_lib.SPLITS}

    def load(limit):
        return {name: data_lib.read_tsv(path, limit=limit) for name, path in paths.items()}

    return harness.Task(
        name="listops",
        load=load,
        build_model=build_model,
        model_defaults=MODEL_DEFAULTS,
        train_defaults=TRAIN_DEFAULTS,
        sequence_length=data_lib.MAX_LENGTH,
        augment=data_lib.permute_arguments,
    )


def accuracy(model, data: data_lib.ListOps, batch_size: int = 64) -> float:
    """Test accuracy of `model` (logits) on `data`, over length-bucketed batches."""
    correct = harness.count_correct(model, data, batch_size, max_length=data_lib.MAX_LENGTH)
    return correct / len(data.labels)


def train(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str = "fftnet",
    **kwargs,
) -> dict[str, Any]:
    """Trains on `DATA/basic_train`, validates on `basic_val` each epoch, checkpoints into
    `out`, and returns (and writes to `OUT/metrics.json`) the test metrics of the best epoch.

    `data` is the directory with `basic_{train,val,test}.tsv[.gz]`; `out` the run directory;
    `model` the token mixer (`"fftnet"`, `"attention"` or `"fnet"`). The other keyword
    arguments are `spectralmix.tasks.harness.train`'s (`epochs`, `batch_size`,
    `learning_rate`, `warmup_steps`, `weight_decay`, `augment`, `accumulate`, `resume`,
    `cpu_budget`, `distribute`, `num_devices`, `limit`, `seed`, `verbose`,
    `model_options`), defaulting to `TRAIN_DEFAULTS` and `MODEL_DEFAULTS`. `augment`
    reorders the arguments of every operator in each training example, anew every epoch
    (`spectralmix.data.listops.permute_arguments`; the labels are unchanged because all four
    operators are symmetric).
    """
    return harness.train(task(data), out, model=model, **kwargs)


def load(preset: str | None = None, path: str | os.PathLike | None = None):
    """The model to evaluate: `preset` (weights shipped in the package) or a `.keras` `path`."""
    if (preset is None) == (path is None):
        raise ValueError(
            f"Give exactly one of preset and path. Received: preset={preset!r}, path={path!r}"
        )
    if preset is not None:
        from spectralmix.models import FFTNetClassifier

        return FFTNetClassifier.from_preset(preset)
    import keras

    import spectralmix.models  # noqa: F401  (registers the classes the file names, PerUpdate too)

    if not os.path.isfile(path):
        raise ValueError(f"No model file at path={os.fspath(path)!r}")
    return keras.saving.load_model(path)


class EvaluationData(NamedTuple):
    """A split to evaluate on and where it came from (`source`, merged into the results)."""

    split: data_lib.ListOps
    source: dict[str, Any]


def evaluation_data(
    path: str | os.PathLike | None = None, *, generate: int | None = None, seed: int = 0
) -> EvaluationData:
    """The examples to evaluate on: the ListOps TSV file at `path`, or `generate` fresh
    expressions from `spectralmix.data.listops_generator` with `seed` (made in memory, at LRA's
    lengths, 500-2,000 tokens). Exactly one of `path` and `generate`."""
    if (path is None) == (generate is None):
        raise ValueError(
            f"Give exactly one of path and generate. Received: path={path!r}, generate={generate!r}"
        )
    if path is not None:
        split = data_lib.read_tsv(path)
        return EvaluationData(split, {"source": "file", "data": os.fspath(path)})
    from spectralmix.data import listops_generator

    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int. Received: seed={seed!r}")
    examples = listops_generator.generate(generate, seed=seed)
    split = data_lib.ListOps(
        [np.asarray(data_lib.encode(source), np.int32) for source, _ in examples],
        np.asarray([value for _, value in examples], np.int32),
    )
    return EvaluationData(split, {"source": "generated", "generate": generate, "seed": seed})


def evaluate(
    model, data: str | os.PathLike | EvaluationData, *, batch_size: int = 64
) -> dict[str, Any]:
    """Accuracy of `model` on `data` (a ListOps TSV path, or `evaluation_data(...)`):
    `{"accuracy", "n", "correct", "ci95", "source", ...}`. `ci95` is the 95% Wilson score
    interval of the accuracy (`wilson_interval`); `source` says where the examples came from
    (`"file"` with `data`, or `"generated"` with `generate` and `seed`)."""
    if not isinstance(data, EvaluationData):
        data = evaluation_data(data)
    n = len(data.split.labels)
    if n == 0:
        raise ValueError(f"No examples to evaluate on. Received: {data.source}")
    correct = harness.count_correct(model, data.split, batch_size, max_length=data_lib.MAX_LENGTH)
    return {**harness.scored(correct, n), **data.source}


def save_as_preset(run_dir: str | os.PathLike, preset_dir: str | os.PathLike, command: str) -> str:
    """Writes a finished run's best model as a preset directory (keras-hub's layout, see
    `spectralmix.models.presets`): the model without its optimizer state, and metadata with
    the run's metrics and the command that trained it. Returns `preset_dir`."""
    import keras

    import spectralmix.models  # noqa: F401  (registers the classes the file names)
    from spectralmix.tasks import checkpointing

    run_dir, preset_dir = os.fspath(run_dir), os.fspath(preset_dir)
    metrics_path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(metrics_path):
        raise ValueError(f"run_dir={run_dir!r} holds no finished run (no metrics.json)")
    with open(metrics_path, encoding="utf-8") as f:
        metrics = json.load(f)
    best = keras.saving.load_model(os.path.join(run_dir, checkpointing.BEST_FILE))
    # An uncompiled copy: the preset holds the model's weights, not the optimizer's moments.
    bare = type(best).from_config(best.get_config())
    bare.set_weights(best.get_weights())
    bare.save_to_preset(
        preset_dir,
        metadata={
            "description": "FFTNet trained on LRA ListOps (padding id 0, ids from "
            "spectralmix.data.listops.VOCABULARY)",
            "test_accuracy": metrics["test_accuracy"],
            "command": command,
            "metrics": metrics,
        },
    )
    return preset_dir


#: Validation and test examples the arena scores: the first of `basic_val` and `basic_test`
#: (2,000 each); attention's evaluation takes longer than training under a small budget.
ARENA_EVALUATION = {"val": 500, "test": 1_000}


@register_task("listops", data="listops", test_examples=ARENA_EVALUATION["test"])
def make(data=None, *, seed: int = 0, test_examples: int | None = None) -> harness.Task:
    """The arena's ListOps task: the files in `data` (else `SPECTRALMIX_LISTOPS_DIR`), scored
    on the first `ARENA_EVALUATION` examples of the validation and test splits."""
    if data is None:
        data = os.environ.get("SPECTRALMIX_LISTOPS_DIR")
    if data is None:
        raise ValueError(
            "The listops task needs its files: pass --data listops=DIR (or set "
            "SPECTRALMIX_LISTOPS_DIR); make them with `spectralmix data listops --out DIR`"
        )
    counts = {"val": ARENA_EVALUATION["val"], "test": test_examples or ARENA_EVALUATION["test"]}
    return harness.first_examples(task(data), counts)
