"""LRA ListOps end to end: FFTNet, the attention Transformer and FNet in one harness.

`train` fits an `FFTNetClassifier` (`model="fftnet"|"attention"|"fnet"`: only the token mixer
differs) on `basic_train`, picks the epoch by `basic_val` accuracy and reports `basic_test`
accuracy. Batches are bucketed by length (`spectralmix.data.listops.bucketed_dataset`).
Each epoch is checkpointed (`spectralmix.tasks.checkpointing`); `resume=True` continues an
interrupted run from its last completed epoch with the optimizer state and learning-rate
schedule where they were.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, NamedTuple

import numpy as np

from spectralmix.data import listops as data_lib

MODELS = ("fftnet", "attention", "fnet")
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


def build_model(model: str = "fftnet", **overrides):
    """An uncompiled `FFTNetClassifier` of the harness size with `model`'s token mixer."""
    from spectralmix.layers import _checks
    from spectralmix.models import FFTNetClassifier

    model = _checks.choice("model", model, MODELS)
    config = {**MODEL_DEFAULTS, **overrides}
    return FFTNetClassifier(
        vocabulary_size=data_lib.VOCABULARY_SIZE,
        num_classes=data_lib.NUM_CLASSES,
        max_sequence_length=data_lib.MAX_LENGTH,
        token_mixer=model,
        name=f"listops_{model}",
        **config,
    )


def compile_model(model, *, total_steps, learning_rate, warmup_steps, weight_decay):
    """AdamW with linear warm-up then cosine decay to 0 over `total_steps`, gradient clipping
    at norm 1, cross-entropy on logits, accuracy."""
    import keras

    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _correct(model, data: data_lib.ListOps, batch_size: int) -> int:
    """How many examples of `data` `model` (logits) gets right, over length-bucketed batches."""
    correct = 0
    for token_ids, labels in data_lib.iter_batches(data, batch_size):
        logits = np.asarray(model.predict_on_batch(token_ids))
        correct += int(np.sum(np.argmax(logits, axis=-1) == labels))
    return correct


def accuracy(model, data: data_lib.ListOps, batch_size: int = 64) -> float:
    """Test accuracy of `model` (logits) on `data`, over length-bucketed batches."""
    return _correct(model, data, batch_size) / len(data.labels)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion `successes / n`.

    With `p = successes / n` and `z` the two-sided normal quantile of `confidence` (1.96 for
    95%), the bounds are `(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`. Unlike the
    normal approximation `p ± z·sqrt(p(1-p)/n)`, it stays inside [0, 1] and keeps its coverage
    near 0 and 1.

    Examples:
        >>> [round(b, 4) for b in wilson_interval(5, 10)]
        [0.2366, 0.7634]
    """
    import math
    import statistics

    for name, value in (("successes", successes), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int. Received: {name}={value!r}")
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(
            f"Need n >= 1 and 0 <= successes <= n. Received: successes={successes}, n={n}"
        )
    if isinstance(confidence, bool) or not (
        isinstance(confidence, int | float) and 0 < confidence < 1
    ):
        raise ValueError(f"confidence must be in (0, 1). Received: confidence={confidence!r}")
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At p = 0 (p = 1) the lower (upper) bound is exactly 0 (1); rounding would miss it.
    low = 0.0 if successes == 0 else center - half
    high = 1.0 if successes == n else center + half
    return low, high


def train(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str = "fftnet",
    epochs: int = TRAIN_DEFAULTS["epochs"],
    batch_size: int = TRAIN_DEFAULTS["batch_size"],
    learning_rate: float = TRAIN_DEFAULTS["learning_rate"],
    warmup_steps: int = TRAIN_DEFAULTS["warmup_steps"],
    weight_decay: float = TRAIN_DEFAULTS["weight_decay"],
    augment: bool = TRAIN_DEFAULTS["augment"],
    resume: bool = False,
    cpu_budget: float | None = None,
    distribute: str | None = None,
    num_devices: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    verbose: int | str = 1,
    model_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Trains on `DATA/basic_train`, validates on `basic_val` each epoch, checkpoints into
    `out`, and returns (and writes to `OUT/metrics.json`) the test metrics of the best epoch.

    Args:
        data: directory with `basic_{train,val,test}.tsv[.gz]`.
        out: run directory (checkpoints, `state.json`, `best.keras`, `metrics.json`).
        model: token mixer, `"fftnet"`, `"attention"` or `"fnet"`.
        augment: reorder the arguments of every operator in each training example, anew
            every epoch (`spectralmix.data.listops.permute_arguments`; the labels are
            unchanged because all four operators are symmetric).
        resume: continue the run in `out` from its last checkpoint. Without it, `out` must
            not hold a run already.
        cpu_budget: stop training once it has used this many CPU seconds (process time over
            all threads, resumes included); the partial epoch is validated and checkpointed.
            Gives models of different speed the same compute in a comparison.
        distribute: `"data"` or `"model"` to train on several devices through
            `spectralmix.distribute.distribution_scope` (JAX, TensorFlow; the devices must be
            configured first, see `spectralmix.distribute.configure_devices`). Under `"data"`
            every batch holds a multiple of `num_devices` examples.
        num_devices: devices for `distribute` (default: all).
        limit: use only the first `limit` examples of each split (smoke runs).
        model_options: overrides of `MODEL_DEFAULTS`.
    """
    import keras

    import spectralmix.models  # noqa: F401  (registers the classes that checkpoints name)
    from spectralmix.layers import _checks
    from spectralmix.tasks import checkpointing

    model = _checks.choice("model", model, MODELS)
    epochs = _checks.positive_int("epochs", epochs)
    batch_size = _checks.positive_int("batch_size", batch_size)
    if not (isinstance(learning_rate, int | float) and learning_rate > 0):
        raise ValueError(f"learning_rate must be positive. Received: learning_rate={learning_rate}")
    if cpu_budget is not None and not (isinstance(cpu_budget, int | float) and cpu_budget > 0):
        raise ValueError(f"cpu_budget must be positive or None. Received: cpu_budget={cpu_budget}")
    out = os.fspath(out)
    arguments = {
        "model": model,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "warmup_steps": warmup_steps,
        "weight_decay": weight_decay,
        "augment": bool(augment),
        "limit": limit,
        "cpu_budget": cpu_budget,
        "seed": seed,
        "model_options": {**MODEL_DEFAULTS, **(model_options or {})},
    }
    paths = {name: data_lib.split_path(data, name) for name in data_lib.SPLITS}
    state = checkpointing.read_state(out)
    if state is not None and not resume:
        raise ValueError(
            f"out={out!r} already holds a run ({state['epochs_done']} epochs done). "
            "Pass resume=True (--resume) to continue it, or choose another directory."
        )
    if state is not None and state["metadata"]["arguments"] != arguments:
        raise ValueError(
            f"resume=True needs the arguments of the run in {out!r}. "
            f"Received: {arguments}; the run has {state['metadata']['arguments']}"
        )

    splits = {name: data_lib.read_tsv(path, limit=limit) for name, path in paths.items()}
    # A distribution (if any) covers building or loading the model and fitting it.
    with contextlib.ExitStack() as scopes:
        replicas = 1
        if distribute is not None:
            from spectralmix import distribute as distribute_lib

            engine = scopes.enter_context(
                distribute_lib.distribution_scope(distribute, num_devices)
            )
            replicas = _batch_replicas(engine)
        train_batches = data_lib.bucketed_dataset(
            splits["train"],
            batch_size,
            shuffle=True,
            seed=seed,
            start_epoch=state["epochs_done"] if state else 0,
            multiple_of=replicas,
            augment=augment,
        )
        val_batches = data_lib.bucketed_dataset(splits["val"], 64, multiple_of=replicas)
        total_steps = epochs * len(train_batches)

        start_epoch = 0
        if state is None:
            keras.utils.set_random_seed(seed)
            classifier = compile_model(
                build_model(model, **(model_options or {})),
                total_steps=total_steps,
                learning_rate=learning_rate,
                warmup_steps=warmup_steps,
                weight_decay=weight_decay,
            )
        else:
            start_epoch = state["epochs_done"]
            keras.utils.set_random_seed(seed + start_epoch)
            classifier = keras.saving.load_model(os.path.join(out, state["checkpoint"]))
        checkpoint = checkpointing.EpochCheckpoint(
            out, state, monitor="val_accuracy", metadata={"arguments": arguments}
        )
        callbacks = [checkpoint]
        if cpu_budget is not None:
            callbacks.append(checkpointing.CpuBudget(checkpoint, cpu_budget))
        if start_epoch < epochs and not (state and state["stopped_by_budget"]):
            classifier.fit(
                train_batches,
                epochs=epochs,
                initial_epoch=start_epoch,
                validation_data=val_batches,
                callbacks=callbacks,
                verbose=verbose,
            )
    best = keras.saving.load_model(os.path.join(out, checkpointing.BEST_FILE))
    state = checkpoint.state
    metrics = {
        "task": "listops",
        "model": model,
        "backend": keras.config.backend(),
        "test_accuracy": round(accuracy(best, splits["test"]), 4),
        "val_accuracy": round(state["best"], 4),
        "best_epoch": state["best_epoch"],
        "epochs": epochs,
        "resumed_from_epoch": start_epoch,
        "steps": state["steps"],
        "scheduled_steps": total_steps,
        "stopped_by_budget": state["stopped_by_budget"],
        "train_seconds": round(state["train_seconds"], 1),
        "train_cpu_seconds": round(state["train_cpu_seconds"], 1),
        "train_examples": len(splits["train"].labels),
        "test_examples": len(splits["test"].labels),
        "parameters": best.count_params(),
        "arguments": arguments,
        "distribute": distribute,
        "replicas": replicas,
    }
    checkpointing.atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(metrics))
    return metrics


def _batch_replicas(engine) -> int:
    """How many ways a distribution splits each batch (JAX mesh batch axis, TF replicas)."""
    if hasattr(engine, "num_replicas_in_sync"):
        return int(engine.num_replicas_in_sync)
    mesh = engine.device_mesh
    return int(mesh.shape[list(mesh.axis_names).index(engine.batch_dim_name)])


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

    import spectralmix.models  # noqa: F401  (registers the classes the file names)

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
    correct = _correct(model, data.split, batch_size)
    low, high = wilson_interval(correct, n)
    return {
        "accuracy": round(correct / n, 4),
        "n": n,
        "correct": correct,
        "ci95": [round(low, 4), round(high, 4)],
        **data.source,
    }


def save_as_preset(run_dir: str | os.PathLike, weights_dir: str | os.PathLike, command: str) -> str:
    """Writes a finished run's best model as preset files: `fftnet_listops.weights.h5` and
    `fftnet_listops.json` (config, the run's metrics, the command that trained it) in
    `weights_dir` (the package's `spectralmix/models/fftnet/weights/`). Returns the JSON path."""
    import keras

    import spectralmix.models  # noqa: F401  (registers the classes the file names)
    from spectralmix.tasks import checkpointing

    run_dir, weights_dir = os.fspath(run_dir), os.fspath(weights_dir)
    metrics_path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(metrics_path):
        raise ValueError(f"run_dir={run_dir!r} holds no finished run (no metrics.json)")
    with open(metrics_path, encoding="utf-8") as f:
        metrics = json.load(f)
    best = keras.saving.load_model(os.path.join(run_dir, checkpointing.BEST_FILE))
    config = {k: v for k, v in best.get_config().items() if k not in ("name", "trainable")}
    config.pop("dtype", None)
    # An uncompiled copy: the file holds the model's weights, not the optimizer's moments.
    bare = type(best)(**config)
    bare.set_weights(best.get_weights())
    os.makedirs(weights_dir, exist_ok=True)
    weights = os.path.join(weights_dir, "fftnet_listops.weights.h5")
    tmp = os.path.join(weights_dir, ".tmp-fftnet_listops.weights.h5")
    bare.save_weights(tmp)
    os.replace(tmp, weights)
    path = os.path.join(weights_dir, "fftnet_listops.json")
    record = {"config": config, "metrics": metrics, "command": command}
    checkpointing.atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path
