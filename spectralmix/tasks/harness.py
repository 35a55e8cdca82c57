"""One training harness for every task: train, checkpoint, resume, budget and evaluate.

A task (`Task`) says where its splits come from, how to build its model for a token mixer,
its default sizes and its metric; everything else is here, once: AdamW with warm-up and
cosine decay, seeded and resumable batches, an epoch checkpoint
(`spectralmix.tasks.checkpointing`), the CPU budget, gradient accumulation, model selection
on the validation split, and the test split scored once, at the end, with a 95% interval.

Three metrics (`METRICS`):

- `"accuracy"` (classification, higher is better): cross-entropy on the labels, the epoch
  with the highest validation accuracy, test accuracy with its Wilson interval.
- `"bits_per_byte"` (byte-level language modelling, lower is better): next-byte
  cross-entropy on the task's own batches (`Task.batches`), the epoch with the lowest
  validation bits per byte, test bits per byte with a bootstrap interval over test documents
  (`bits_per_byte_interval`). Bits per byte is the total cross-entropy in bits over every
  predicted byte divided by their number (`Task.score` gives both per document).
- `"query_accuracy"` (in-context recall, higher is better): cross-entropy at the positions
  that hold a target (`IGNORE_TARGET` elsewhere), the epoch with the highest validation
  query accuracy, test query accuracy (queries answered right over queries asked, both per
  sequence from `Task.score`) with a bootstrap interval over test sequences.

Splits are `spectralmix.data.batches` data: `SequenceData` (bucketed by length) or
`ArrayData` (fixed shape).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import os
import statistics
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from spectralmix import validation
from spectralmix.data.batches import ArrayData, Data, SequenceData, dataset, iter_batches

__all__ = [
    "IGNORE_TARGET",
    "METRICS",
    "ArrayData",
    "SequenceData",
    "Task",
    "bits_per_byte_interval",
    "compile_model",
    "count_correct",
    "first_examples",
    "scored",
    "scored_bits_per_byte",
    "scored_queries",
    "sequence_classifier",
    "train",
    "wilson_interval",
]


@dataclasses.dataclass(frozen=True)
class Task:
    """What the harness needs to know about a task.

    Attributes:
        name: the task's name (`"listops"`, `"image"`, ...).
        load: `load(limit)` returns `{"train", "val", "test"}` splits (`Data`); `limit`
            (or None) keeps only the first `limit` examples of each (smoke runs).
        build_model: `build_model(model, **options)` returns an uncompiled Keras model of
            logits for token mixer `model` (any registered mixer name, e.g. `"fftnet"`).
        model_defaults: the default `options` of `build_model`.
        train_defaults: default `epochs`, `batch_size`, `learning_rate`, `warmup_steps`,
            `weight_decay` (and `augment`, where the task has an augmentation).
        sequence_length: the longest sequence the token mixer sees (for the table and for
            planning attention's memory).
        augment: `augment(example, rng)` returns a label-preserving variant of one training
            example (a sequence's ids or one input array), or None.
        bucket_step: width of the length buckets of `SequenceData` batches.
        source: facts about the data (paths, seeds), stored in the run's arguments.
        describe: `describe(splits)` returns facts about the loaded splits (e.g. how many
            documents were cut to length), reported as the metrics' `data`; or None.
        metric: `"accuracy"`, `"bits_per_byte"` or `"query_accuracy"` (`METRICS`): the
            loss, the validation score
            that picks the epoch and the test score.
        batches: `batches(data, batch_size, *, seed, start_epoch, multiple_of)` returns the
            training batches (a `keras.utils.PyDataset`, epoch `e` seeded by `seed` and `e`)
            where a split is not classification examples; None: `batches.dataset`'s
            length-bucketed batches. Needed by `"bits_per_byte"`.
        score: `score(model, data, batch_size)` returns `(bits, bytes)`, two arrays with
            one entry per document of `data`: the cross-entropy in bits summed over the
            document's predicted bytes, and their number. Needed by `"bits_per_byte"`; for
            `"query_accuracy"`, the queries answered right and asked, per sequence.
        check_model: `check_model(model)` raises `ValueError` (one line, naming the mixer)
            for a registered token mixer the task cannot use, e.g. a non-causal one for a
            language model; or None: every mixer.
        token_grid: whether the tokens are a square grid in raster order (pixels or patches,
            optionally after a class token), so mixers that need a grid (a mixer's
            `token_grid` declaration, e.g. `"gfnet_2d"`) may enter.
    """

    name: str
    load: Callable[[int | None], dict[str, Data]]
    build_model: Callable[..., Any]
    model_defaults: Mapping[str, Any]
    train_defaults: Mapping[str, Any]
    sequence_length: int
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
    bucket_step: int = 128
    source: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    describe: Callable[[dict[str, Data]], dict[str, Any]] | None = None
    metric: str = "accuracy"
    batches: Callable[..., Any] | None = None
    score: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None
    check_model: Callable[[str], None] | None = None
    token_grid: bool = False

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(
                f"metric must be one of {list(METRICS)}. Received: metric={self.metric!r}"
            )
        if self.metric == "bits_per_byte" and (self.batches is None or self.score is None):
            raise ValueError(
                "A task scored in bits per byte needs its `batches` and `score`. Received: "
                f"batches={self.batches!r}, score={self.score!r}"
            )
        if self.metric == "query_accuracy" and self.score is None:
            raise ValueError(
                "A task scored by query accuracy needs its `score`. Received: score=None"
            )


#: Each metric and whether the best epoch is its `"max"` (accuracy) or its `"min"` (bits per
#: byte) on validation.
METRICS: dict[str, str] = {"accuracy": "max", "bits_per_byte": "min", "query_accuracy": "max"}
#: The target of a position that is not scored (`"query_accuracy"` tasks): Keras's
#: `ignore_class` of the loss.
IGNORE_TARGET = -1


#: The model size and training that the arena's token-sequence tasks share (pathfinder, image,
#: text): small enough for a few hundred updates in minutes of a 2-core CPU.
SMALL_MODEL: dict[str, Any] = {
    "hidden_dim": 32,
    "num_layers": 2,
    "num_heads": 4,
    "mlp_ratio": 2.0,
    "dropout": 0.0,
}
SHORT_TRAINING: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 32,
    "learning_rate": 1e-3,
    "warmup_steps": 100,
    "weight_decay": 0.05,
}


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


def sequence_classifier(task_name: str, *, vocabulary_size: int, num_classes: int, length: int):
    """A `build_model(model, **options)` for `Task`: an `FFTNetClassifier` over token ids
    (`vocabulary_size` ids, 0 the padding) whose token mixer is `model`. `options` are the
    backbone's arguments plus the classifier's `pooling` (default `"cls"`: a class token)
    and `head_dropout` (default: the backbone's `dropout`). A mixer that can be causal
    (`"hyena"`) is built bidirectional (`causal=False`), as classification reads the whole
    sequence, unless `token_mixer_kwargs` say otherwise."""

    def build_model(model: str = "fftnet", **options):
        from spectralmix.models import FFTNetBackbone, FFTNetClassifier
        from spectralmix.registry import get_token_mixer

        model = get_token_mixer(model).token_mixer_name
        options["token_mixer_kwargs"] = bidirectional_kwargs(
            model, options.get("token_mixer_kwargs")
        )
        pooling = options.pop("pooling", "cls")
        head_dropout = options.pop("head_dropout", options.get("dropout", 0.0))
        backbone = FFTNetBackbone(
            vocabulary_size=vocabulary_size,
            max_sequence_length=length,
            token_mixer=model,
            class_token=pooling == "cls",
            name="backbone",
            **options,
        )
        return FFTNetClassifier(
            backbone=backbone,
            num_classes=num_classes,
            pooling=pooling,
            head_dropout=head_dropout,
            name=f"{task_name}_{model}",
        )

    return build_model


def bidirectional_kwargs(model: str, token_mixer_kwargs=None) -> dict[str, Any] | None:
    """`token_mixer_kwargs` with `causal=False` added where mixer `model`'s constructor takes
    `causal` and they do not set it (a classifier reads the whole sequence: hyena is causal by
    default); unchanged (None stays None) for the other mixers, and for those bidirectional
    by default (`"attention"`).

    Examples:
        >>> bidirectional_kwargs("hyena"), bidirectional_kwargs("fnet")
        ({'causal': False}, None)
        >>> bidirectional_kwargs("attention", {"dropout": 0.1})
        {'dropout': 0.1}
    """
    import inspect

    from spectralmix.registry import get_token_mixer, takes_argument

    mixer = get_token_mixer(model)
    if not takes_argument(mixer, "causal"):
        return token_mixer_kwargs
    if inspect.signature(mixer.__init__).parameters["causal"].default is not True:
        return token_mixer_kwargs  # bidirectional already unless asked (attention)
    kwargs = dict(token_mixer_kwargs or {})
    kwargs.setdefault("causal", False)
    return kwargs


def check_entry(task: Task, model: str) -> None:
    """Raises a one-line `ValueError` if `task` cannot train registered token mixer `model`:
    a mixer that needs a token grid on a task whose tokens are not one, or the task's own
    `check_model` refusal (e.g. a non-causal mixer for a language model)."""
    from spectralmix.registry import needs_token_grid

    if needs_token_grid(model) and not task.token_grid:
        raise ValueError(
            f"Token mixer {model!r} arranges the tokens on a square 2-D grid, and the "
            f"{task.name} task's {task.sequence_length:,} tokens are not one (a sequence); "
            "use a sequence mixer such as 'gfnet'. "
            f"Received: model={model!r}, task={task.name!r}"
        )
    if task.check_model is not None:
        task.check_model(model)


def first_examples(task: Task, counts: Mapping[str, int]) -> Task:
    """`task` with only the first `counts[split]` examples of the named splits (e.g. a
    smaller evaluation: `{"val": 500, "test": 1_000}`), recorded in its `source`."""
    from spectralmix.data.batches import take

    def load(limit):
        splits = task.load(limit)
        return {name: take(data, counts.get(name)) for name, data in splits.items()}

    return dataclasses.replace(task, load=load, source={**task.source, "first": dict(counts)})


def count_correct(
    model, data: Data, batch_size: int = 64, step: int = 128, max_length: int = 0
) -> int:
    """How many examples of `data` `model` (logits) classifies correctly, in length buckets of
    `step` tokens up to `max_length` (`spectralmix.data.batches.iter_batches`)."""
    correct = 0
    for inputs, labels in iter_batches(data, batch_size, step, max_length):
        logits = np.asarray(model.predict_on_batch(inputs))
        correct += int(np.sum(np.argmax(logits, axis=-1) == labels))
    return correct


def scored(correct: int, n: int) -> dict[str, Any]:
    """`{"accuracy", "n", "correct", "ci95"}`: the accuracy with its 95% Wilson interval."""
    if n == 0:
        raise ValueError("No examples to score. Received: n=0")
    low, high = wilson_interval(correct, n)
    return {
        "accuracy": round(correct / n, 4),
        "n": n,
        "correct": correct,
        "ci95": [round(low, 4), round(high, 4)],
    }


def bits_per_byte_interval(
    bits, counts, confidence: float = 0.95, *, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """A percentile bootstrap interval for `sum(bits) / sum(counts)` over documents.

    `resamples` times (seeded by `seed`), as many documents as there are are drawn with
    replacement and their total bits divided by their total bytes; the bounds are the
    `(1 - confidence) / 2` and `(1 + confidence) / 2` quantiles of those ratios. The
    interval says how much the score depends on which documents were drawn for the test
    split (the documents are the sampled units: bytes of one document are not independent);
    it does not cover the randomness of training.

    Examples:
        >>> bits_per_byte_interval([800.0, 800.0], [100, 100])  # every document at 8 bits
        (8.0, 8.0)
    """
    bits = np.asarray(bits, np.float64)
    counts = np.asarray(counts, np.float64)
    if bits.ndim != 1 or bits.shape != counts.shape or not len(bits):
        raise ValueError(
            "bits and counts must be two non-empty 1-D arrays of one entry per document. "
            f"Received: shapes {bits.shape} and {counts.shape}"
        )
    if not (np.all(np.isfinite(bits)) and np.all(bits >= 0) and np.all(counts > 0)):
        raise ValueError("bits must be finite and >= 0 and counts > 0 for every document")
    if isinstance(confidence, bool) or not (
        isinstance(confidence, int | float) and 0 < confidence < 1
    ):
        raise ValueError(f"confidence must be in (0, 1). Received: confidence={confidence!r}")
    resamples = validation.positive_int("resamples", resamples)
    rng = np.random.default_rng(seed)
    ratios = []
    for start in range(0, resamples, 1000):  # in chunks: (chunk, documents) index arrays
        drawn = rng.integers(len(bits), size=(min(1000, resamples - start), len(bits)))
        ratios.append(bits[drawn].sum(axis=1) / counts[drawn].sum(axis=1))
    low, high = np.quantile(np.concatenate(ratios), [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def scored_bits_per_byte(bits, counts) -> dict[str, Any]:
    """`{"bits_per_byte", "documents", "bytes", "ci95"}` from each document's cross-entropy
    in bits and its number of predicted bytes: total bits / total bytes, with its 95%
    bootstrap interval over documents (`bits_per_byte_interval`, seed 0)."""
    bits = np.asarray(bits, np.float64)
    counts = np.asarray(counts, np.int64)
    if not len(counts):
        raise ValueError("No documents to score. Received: 0 documents")
    low, high = bits_per_byte_interval(bits, counts)
    return {
        "bits_per_byte": round(float(bits.sum() / counts.sum()), 4),
        "documents": len(counts),
        "bytes": int(counts.sum()),
        "ci95": [round(low, 4), round(high, 4)],
    }


def scored_queries(correct, queries) -> dict[str, Any]:
    """`{"query_accuracy", "sequences", "queries", "correct", "ci95"}` from each sequence's
    queries answered right and asked: total right / total asked, with a 95% bootstrap
    interval over sequences (the queries of one sequence share its context, so sequences are
    the sampled units; `bits_per_byte_interval`'s ratio bootstrap, seed 0)."""
    correct = np.asarray(correct, np.int64)
    queries = np.asarray(queries, np.int64)
    if not len(queries):
        raise ValueError("No sequences to score. Received: 0 sequences")
    low, high = bits_per_byte_interval(correct, queries)
    return {
        "query_accuracy": round(float(correct.sum() / queries.sum()), 4),
        "sequences": len(queries),
        "queries": int(queries.sum()),
        "correct": int(correct.sum()),
        "ci95": [round(low, 4), round(high, 4)],
    }


def compile_model(
    model,
    *,
    total_steps,
    learning_rate,
    warmup_steps,
    weight_decay,
    accumulate=1,
    metrics=("accuracy",),
    ignore_class=None,
):
    """AdamW with linear warm-up then cosine decay to 0 over `total_steps` optimizer updates,
    gradient clipping at norm 1, cross-entropy on logits (a label per example, or a next
    token per position for a language model), and `metrics`. With `accumulate` > 1 the
    optimizer sums the gradients of that many batches before each update
    (`gradient_accumulation_steps`): a smaller batch per step, the same batch per update.
    The optimizer is `spectralmix.optimizers.AdamW`, which on TensorFlow sums the repeated
    rows of an `Embedding`'s sparse gradient first, so updates match JAX's and PyTorch's.
    `ignore_class`: a target value whose positions the loss leaves out (None: none)."""
    import keras

    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
    )
    if accumulate > 1:
        from spectralmix.schedules import PerUpdate

        schedule = PerUpdate(schedule, accumulate)
    from spectralmix.optimizers import AdamW

    model.compile(
        optimizer=AdamW(
            schedule,
            weight_decay=weight_decay,
            clipnorm=1.0,
            gradient_accumulation_steps=accumulate if accumulate > 1 else None,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=ignore_class
        ),
        metrics=list(metrics),
    )
    return model


def positive_number(name: str, value, *, allow_none: bool = False, allow_zero: bool = False):
    """`value` if it is a finite number > 0 (>= 0 with `allow_zero`; or None, with
    `allow_none`); else a `ValueError` naming `name` and the value. The value is returned as
    given (an int stays an int), so that runs resume with equal arguments."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not (
        isinstance(value, int | float)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    ):
        bound = ">= 0" if allow_zero else "positive"
        suffix = " or None" if allow_none else ""
        raise ValueError(f"{name} must be {bound}{suffix}. Received: {name}={value!r}")
    return value


def train(
    task: Task,
    out: str | os.PathLike,
    *,
    model: str = "fftnet",
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    warmup_steps: int | None = None,
    weight_decay: float | None = None,
    augment: bool | None = None,
    accumulate: int = 1,
    resume: bool = False,
    cpu_budget: float | None = None,
    distribute: str | None = None,
    num_devices: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    verbose: int | str = 1,
    model_options: dict[str, Any] | None = None,
    updates: int | None = None,
    read_test: bool = True,
) -> dict[str, Any]:
    """Trains `task`'s model on its train split, validates each epoch, checkpoints into
    `out`, and returns (and writes to `OUT/metrics.json`) the test metrics of the best epoch.

    Training arguments left as None take `task.train_defaults`.

    Args:
        task: the task (`Task`).
        out: run directory (checkpoints, `state.json`, `best.keras`, `metrics.json`).
        model: a registered token mixer's name (`spectralmix.registry.token_mixer_names()`).
        augment: apply `task.augment` to every training example, anew each epoch.
        accumulate: batches of `batch_size / accumulate` examples per step, with their
            gradients summed over `accumulate` steps before each optimizer update (the same
            update as one batch of `batch_size`, in less memory). Must divide `batch_size`.
        resume: continue the run in `out` from its last checkpoint. Without it, `out` must
            not hold a run already.
        cpu_budget: stop training once it has used this many CPU seconds (process time over
            all threads, resumes included); the partial epoch is validated and checkpointed.
            Gives models of different speed the same compute in a comparison.
        updates: train exactly this many optimizer updates (instead of `epochs`): as many
            epochs as it takes, the learning-rate schedule spread over them, the last epoch
            cut where the count is reached and validated like any other. Gives models the
            same number of updates in a comparison; with `cpu_budget` as well, whichever
            comes first stops the run (`stopped_by_budget` says which).
        read_test: score the test split at the end (default). `False` for a tuning trial,
            chosen on validation: the metrics then hold the validation score only.
        distribute: `"data"`, `"model"` or `"sequence"` (JAX; token batches are padded, with
            token 0, until their length with a class token counted splits over the devices:
            the one-device model gives the same outputs on them) to train on several devices through
            `spectralmix.distribute.distribution_scope` (JAX, TensorFlow; the devices must be
            configured first, see `spectralmix.distribute.configure_devices`). Under `"data"`
            every batch holds a multiple of `num_devices` examples.
        num_devices: devices for `distribute` (default: all).
        limit: use only the first `limit` examples of each split (smoke runs).
        model_options: overrides of `task.model_defaults`, the backbone's arguments; e.g.
            `{"remat": True}` rematerialises each block in training (`MetaFormerBlock`,
            `keras.remat`: the same updates in less memory, for long sequences; CLI `--remat`).
    """
    import keras

    import spectralmix.models  # noqa: F401  (registers the classes that checkpoints name)
    from spectralmix.tasks import checkpointing

    arguments = _run_arguments(
        task,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        augment=augment,
        accumulate=accumulate,
        cpu_budget=cpu_budget,
        limit=limit,
        seed=seed,
        model_options=model_options,
        updates=updates,
    )
    out = os.fspath(out)
    state = _previous_state(out, arguments, resume)
    splits = task.load(limit)
    step_batch = arguments["batch_size"] // arguments["accumulate"]
    # A distribution (if any) covers building or loading the model and fitting it.
    with contextlib.ExitStack() as scopes:
        replicas = token_multiple = 1
        if distribute is not None:
            from spectralmix import distribute as distribute_lib

            engine = scopes.enter_context(
                distribute_lib.distribution_scope(distribute, num_devices)
            )
            replicas = _batch_replicas(engine)
            if distribute == "sequence":
                token_multiple = _mesh_devices(engine)
        checkpoint, start_epoch, total_steps = _fit(
            task,
            splits,
            out,
            state,
            arguments,
            replicas=replicas,
            verbose=verbose,
            token_multiple=token_multiple,
        )
    best = keras.saving.load_model(os.path.join(out, checkpointing.BEST_FILE))
    state = checkpoint.state
    # The test split, once, with the epoch chosen on validation.
    if not read_test:  # a tuning trial: chosen on validation, the test split left unread
        scores = {
            "metric": task.metric,
            f"val_{task.metric}": round(state["best"], 4),
            "test_read": False,
        }
    elif task.metric == "bits_per_byte":
        test = scored_bits_per_byte(*task.score(best, splits["test"], step_batch))
        scores = {
            "metric": task.metric,
            "test_bits_per_byte": test["bits_per_byte"],
            "test_bytes": test["bytes"],
            "test_ci95": test["ci95"],
            "val_bits_per_byte": round(state["best"], 4),
        }
    elif task.metric == "query_accuracy":
        test = scored_queries(*task.score(best, splits["test"], step_batch))
        scores = {
            "metric": task.metric,
            "test_query_accuracy": test["query_accuracy"],
            "test_queries": test["queries"],
            "test_ci95": test["ci95"],
            "val_query_accuracy": round(state["best"], 4),
        }
    else:
        # At the training step's batch, the one the memory plan made fit: attention's scores
        # grow with the batch, so a larger one could exceed the plan after training is done.
        test = scored(
            count_correct(best, splits["test"], step_batch, task.bucket_step, task.sequence_length),
            len(splits["test"].labels),
        )
        scores = {
            "test_accuracy": test["accuracy"],
            "test_correct": test["correct"],
            "test_ci95": test["ci95"],
            "val_accuracy": round(state["best"], 4),
        }
    metrics = {
        "task": task.name,
        "model": arguments["model"],
        "backend": keras.config.backend(),
        **scores,
        "best_epoch": state["best_epoch"],
        "epochs": arguments["epochs"],
        "resumed_from_epoch": start_epoch,
        "steps": state["steps"],
        "updates": state["steps"] // arguments["accumulate"],
        "scheduled_steps": total_steps * arguments["accumulate"],
        "stopped_by_budget": state["stopped_by_budget"],
        "train_seconds": round(state["train_seconds"], 1),
        "train_cpu_seconds": round(state["train_cpu_seconds"], 1),
        "train_examples": len(splits["train"].labels),
        "val_examples": len(splits["val"].labels),
        "test_examples": len(splits["test"].labels),
        "sequence_length": task.sequence_length,
        "data": task.describe(splits) if task.describe else None,
        "parameters": best.count_params(),
        "arguments": arguments,
        "distribute": distribute,
        "replicas": replicas,
    }
    checkpointing.atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(metrics))
    return metrics


#: `train`'s keyword arguments that define a run (what a resumed or reused run must repeat).
RUN_KEYS = (
    "model",
    "epochs",
    "batch_size",
    "learning_rate",
    "warmup_steps",
    "weight_decay",
    "augment",
    "accumulate",
    "cpu_budget",
    "limit",
    "seed",
    "model_options",
    "updates",
)


#: `train`'s parameters, taken when the module loads (their defaults fill a reused run's).
_TRAIN_PARAMETERS = inspect.signature(train).parameters


def finished_metrics(task: Task, out: str | os.PathLike, **train_kwargs) -> dict | None:
    """The metrics of the finished run in `out` if it was made with the arguments that
    `train(task, out, **train_kwargs)` would use; None if `out` holds no finished run.
    Raises `ValueError` if it holds one made with other arguments, so that a caller that
    reuses finished runs (the arena, ablations) never reports them under settings they did not
    have. Keys of `train_kwargs` that do not define a run (`verbose`, `read_test`) are ignored.
    """
    path = os.path.join(os.fspath(out), "metrics.json")
    if not os.path.isfile(path):
        return None
    given = {k: train_kwargs.get(k, _TRAIN_PARAMETERS[k].default) for k in RUN_KEYS}
    arguments = json.loads(json.dumps(_run_arguments(task, **given)))
    with open(path, encoding="utf-8") as f:
        metrics = json.load(f)
    if metrics.get("arguments") != arguments:
        raise ValueError(
            f"{os.fspath(out)!r} holds a finished run made with other arguments; choose "
            f"another directory or remove it. Received: {arguments}; the run has "
            f"{metrics.get('arguments')}"
        )
    return metrics


def _run_arguments(task: Task, *, model, model_options, **given) -> dict[str, Any]:
    """The run's arguments, checked, with `task.train_defaults` for those left None: what a
    resumed run must repeat."""
    from spectralmix.registry import get_token_mixer

    defaults = dict(task.train_defaults)

    def default(name):
        return defaults.get(name) if given[name] is None else given[name]

    epochs = validation.positive_int("epochs", default("epochs"))
    batch_size = validation.positive_int("batch_size", default("batch_size"))
    learning_rate = positive_number("learning_rate", default("learning_rate"))
    augment = validation.boolean(
        "augment", defaults.get("augment", False) if given["augment"] is None else given["augment"]
    )
    if augment and task.augment is None:
        raise ValueError(f"The {task.name} task has no augmentation. Received: augment=True")
    model = get_token_mixer(model).token_mixer_name
    check_entry(task, model)
    accumulate = validation.positive_int("accumulate", given["accumulate"])
    if batch_size % accumulate:
        raise ValueError(
            "accumulate must divide batch_size. "
            f"Received: accumulate={accumulate}, batch_size={batch_size}"
        )
    return {
        "task": task.name,
        "model": model,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "warmup_steps": validation.integer("warmup_steps", default("warmup_steps"), minimum=0),
        "weight_decay": positive_number("weight_decay", default("weight_decay"), allow_zero=True),
        "augment": augment,
        "accumulate": accumulate,
        "limit": validation.optional_positive_int("limit", given["limit"]),
        "cpu_budget": positive_number("cpu_budget", given["cpu_budget"], allow_none=True),
        "seed": validation.integer("seed", given["seed"], minimum=0),
        "model_options": {**task.model_defaults, **(model_options or {})},
        "source": dict(task.source),
        # Only when given: runs made before `updates` existed resume with their arguments.
        **(
            {"updates": validation.positive_int("updates", given["updates"])}
            if given["updates"] is not None
            else {}
        ),
    }


def _previous_state(out: str, arguments: dict[str, Any], resume: bool) -> dict | None:
    """The checkpointed state of the run in `out` (None: a new run); refuses to overwrite a
    run without `resume`, or to resume one made with other arguments."""
    from spectralmix.tasks import checkpointing

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
    return state


def _prepended_tokens(model) -> int:
    """Tokens `model`'s backbone puts before the inputs' (a class token: 1)."""
    return int(bool(getattr(getattr(model, "backbone", None), "class_token", False)))


def _fit(task, splits, out, state, arguments, *, replicas, verbose, token_multiple=1):
    """Builds (or reloads) and fits the model, checkpointing each epoch; returns the
    checkpoint callback, the epoch it started from and the scheduled optimizer updates.
    `token_multiple` (sequence parallelism): token batches are padded so that their length,
    a class token counted, splits over that many devices."""
    import keras

    from spectralmix.tasks import checkpointing

    accumulate = arguments["accumulate"]
    step_batch = arguments["batch_size"] // accumulate
    callbacks = []
    # The model first: how far batches are padded for sequence parallelism depends on it.
    start_epoch = 0
    if state is None:
        keras.utils.set_random_seed(arguments["seed"])
        classifier = task.build_model(arguments["model"], **arguments["model_options"])
    else:
        start_epoch = state["epochs_done"]
        keras.utils.set_random_seed(arguments["seed"] + start_epoch)
        classifier = keras.saving.load_model(os.path.join(out, state["checkpoint"]))
    padding = {}
    if token_multiple > 1:
        padding = {
            "length_multiple": token_multiple,
            "extra_tokens": _prepended_tokens(classifier),
        }
    if task.batches is None:
        train_batches = dataset(
            splits["train"],
            step_batch,
            shuffle=True,
            seed=arguments["seed"],
            start_epoch=state["epochs_done"] if state else 0,
            step=task.bucket_step,
            max_length=task.sequence_length,
            multiple_of=replicas,
            augment=task.augment if arguments["augment"] else None,
            **padding,
        )
    else:
        train_batches = task.batches(
            splits["train"],
            step_batch,
            seed=arguments["seed"],
            start_epoch=state["epochs_done"] if state else 0,
            multiple_of=replicas,
        )
    if task.metric == "accuracy":  # Keras validates: `val_accuracy`
        val_batches = dataset(
            splits["val"],
            max(step_batch, replicas),
            step=task.bucket_step,
            max_length=task.sequence_length,
            multiple_of=replicas,
            **padding,
        )
    else:  # over whole documents, by the task's `score`, before the checkpoint reads it
        val_batches = None

        def validation_score(model):  # bits / bytes, or queries right / queries asked
            numerator, denominator = task.score(model, splits["val"], step_batch)
            return float(np.sum(numerator) / np.sum(denominator))

        callbacks.append(checkpointing.ValidationScore(f"val_{task.metric}", validation_score))
    epochs = arguments["epochs"]
    total_steps = epochs * len(train_batches) // accumulate
    if "updates" in arguments:  # as many epochs as the updates take, the schedule over them
        total_steps = arguments["updates"]
        epochs = -(-total_steps * accumulate // max(len(train_batches), 1))
    if state is None:
        classifier = compile_model(
            classifier,
            total_steps=total_steps,
            learning_rate=arguments["learning_rate"],
            warmup_steps=arguments["warmup_steps"],
            weight_decay=arguments["weight_decay"],
            accumulate=accumulate,
            metrics=("accuracy",) if task.metric == "accuracy" else (),
            ignore_class=IGNORE_TARGET if task.metric == "query_accuracy" else None,
        )
    checkpoint = checkpointing.EpochCheckpoint(
        out,
        state,
        monitor=f"val_{task.metric}",
        metadata={"arguments": arguments},
        mode=METRICS[task.metric],
    )
    callbacks.append(checkpoint)
    if arguments["cpu_budget"] is not None:
        callbacks.append(checkpointing.CpuBudget(checkpoint, arguments["cpu_budget"]))
    if "updates" in arguments:
        callbacks.append(checkpointing.UpdateBudget(checkpoint, total_steps * accumulate))
    if start_epoch < epochs and not (state and state["stopped_by_budget"]):
        # shuffle=False: the batches' own plan shuffles, seeded per epoch. Keras's default
        # reshuffles the batch order from Python's global RNG, which a resumed run reaches in
        # another state, so it would train on another order than an uninterrupted run.
        classifier.fit(
            train_batches,
            epochs=epochs,
            initial_epoch=start_epoch,
            validation_data=val_batches,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,
        )
    return checkpoint, start_epoch, total_steps


def _mesh_devices(engine) -> int:
    """The devices of a JAX distribution's mesh."""
    return int(np.prod(engine.device_mesh.shape))


def _batch_replicas(engine) -> int:
    """How many ways a distribution splits each batch (JAX mesh batch axis, TF replicas)."""
    if hasattr(engine, "sequence_axis"):  # sequence parallel: the tokens split, not the batch
        return 1
    if hasattr(engine, "num_replicas_in_sync"):
        return int(engine.num_replicas_in_sync)
    mesh = engine.device_mesh
    return int(mesh.shape[list(mesh.axis_names).index(engine.batch_dim_name)])
