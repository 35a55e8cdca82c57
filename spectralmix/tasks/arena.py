"""The arena: every (task, token mixer) pair trained under the same CPU budget, one harness.

`run` trains each pair of `tasks` x `models` with `spectralmix.tasks.harness.train`, in a
child process of its own, under the same `cpu_budget` (CPU seconds, all threads) and
address-space limit (`memory_limit_gib`, `RLIMIT_AS`), into `OUT/TASK/MODEL/`. Each pair is
checkpointed; running the same command again resumes the unfinished pairs and reuses the
finished ones. A pair that runs out of memory is recorded as such, with the length and the
per-step batch it failed at, never dropped.

Attention's memory grows with the square of the length, so its per-step batch is planned
(`plan_accumulation`): the batch is split into micro-batches, and their gradients accumulated
by the optimizer (`gradient_accumulation_steps`), until the estimated attention memory fits in
half the limit. Each optimizer update still sees the whole batch.

A task may refuse a token mixer (`Task.check_model`: the language model `lm` takes causal
mixers only); such a pair is not entered, no process is started, and the table says why.

Results: `OUT/results.json` (every pair's metrics or failure), `OUT/results.md` (a Markdown
table per metric: accuracy, and bits per byte beside gzip's and xz's on the same test
documents) and `OUT/results.png` (the test score against training CPU seconds, with 95%
intervals, a panel per metric; needs matplotlib).
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import multiprocessing
import os
import resource
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from spectralmix import validation
from spectralmix.tasks import harness
from spectralmix.tasks.registry import data_names, get_task, make_task

_OOM_SIGNS = (
    "out of memory",
    "resource_exhausted",
    "bad_alloc",
    "cannot allocate memory",
    "can't allocate memory",
    "oom when allocating",
    "memoryerror",
)


def plan_accumulation(task: harness.Task, model: str, batch_size: int, memory_bytes: int) -> int:
    """How many micro-batches to split `batch_size` into: 1 for a mixer whose memory grows
    linearly with the length (FFTNet, FNet); for one that declares
    `training_bytes_per_example` (attention) the fewest (a divisor of `batch_size`) whose
    estimated memory fits in `memory_bytes` / 2, or `batch_size` (one example a step) when
    none does; that run then measures whether it fits."""
    from spectralmix.registry import get_token_mixer

    estimate = getattr(get_token_mixer(model), "training_bytes_per_example", None)
    if estimate is None:
        return 1
    options = {**task.model_defaults}
    per_example = options["num_layers"] * estimate(task.sequence_length, options["num_heads"])
    for parts in range(1, batch_size + 1):
        if batch_size % parts == 0 and batch_size // parts * per_example <= memory_bytes / 2:
            return parts
    return batch_size


def plugin_modules(task_name: str, model: str) -> list[str]:
    """The modules outside spectralmix that define the task or the mixer: a pair's child
    process imports them, so that what the caller registered is registered there too."""
    from spectralmix.registry import get_token_mixer

    modules = {get_task(task_name).module, get_token_mixer(model).__module__}
    return sorted(m for m in modules if m.split(".")[0] != "spectralmix")


def default_memory_limit_gib() -> float:
    """Three quarters of the machine's memory, in GiB."""
    return round(0.75 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)


#: Other work on the machine (cores busy, `busy_cores`) above which the arena warns before a
#: pair: a CPU-second budget buys fewer updates on a shared machine, and unevenly across
#: mixers (docs/arena.md, "Run alone").
BUSY_CORES_WARNING = 0.5


def busy_cores(seconds: float = 2.0) -> float | None:
    """Cores busy over the next `seconds` (all processes, from `/proc/stat`), or None where
    there is no `/proc/stat`. The load average would still count a pair that just ended for
    a minute; this measures now."""

    def sample():
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return None
    elapsed = total1 - total0
    if elapsed <= 0:
        return 0.0
    return round((1 - (idle1 - idle0) / elapsed) * (os.cpu_count() or 1), 2)


def _check_quiet(task: str, model: str) -> float | None:
    """`busy_cores()` before a pair, with a one-line warning on stderr above
    `BUSY_CORES_WARNING`."""
    busy = busy_cores()
    if busy is not None and busy > BUSY_CORES_WARNING:
        print(
            f"spectralmix arena: {busy:.1f} cores busy with other work before {task}/{model}; "
            "CPU-second budgets are comparable only on a quiet machine (docs/arena.md)",
            file=sys.stderr,
        )
    return busy


def _cell(spec: dict[str, Any]) -> None:
    """Child process: one pair, under the memory limit, stderr to the pair's log."""
    limit = int(spec["memory_limit_gib"] * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    _train_pair(spec)


def _train_pair(spec: dict[str, Any]) -> None:
    """Trains one pair (resuming its run); a failure is written to the pair's failure.json
    and raised, an interruption exits with `INTERRUPTED` and writes nothing."""
    from spectralmix.tasks import checkpointing

    try:
        for module in spec["modules"]:
            if module not in ("__main__", "__mp_main__"):  # spawn re-runs the main script
                importlib.import_module(module)
        task = make_task(spec["task"], **spec["task_options"])
        run_dir = spec["run_dir"]
        harness.train(
            task,
            run_dir,
            resume=checkpointing.read_state(run_dir) is not None,
            **spec["train_options"],
        )
    except KeyboardInterrupt:
        # Interrupted, not failed: no failure.json, so running the command again resumes.
        sys.exit(INTERRUPTED)
    except BaseException as error:
        text = f"{type(error).__name__}: {error}"
        failure = {
            "error": " ".join(text.split())[:500],
            "out_of_memory": _looks_like_oom(text),
            "train_options": _defining(spec["train_options"]),
        }
        checkpointing.atomic_write_text(
            os.path.join(spec["run_dir"], "failure.json"), json.dumps(failure)
        )
        raise


#: A pair's exit status when it was interrupted (Ctrl-C): the shell's 128 + SIGINT.
INTERRUPTED = 128 + signal.SIGINT


def _defining(train_options: dict[str, Any]) -> dict[str, Any]:
    """The options that define a pair's run (not `verbose`), as JSON stores them."""
    return json.loads(json.dumps({k: v for k, v in train_options.items() if k != "verbose"}))


def _looks_like_oom(text: str) -> bool:
    text = text.lower()
    return any(sign in text for sign in _OOM_SIGNS)


def _tail(path: str, size: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def run(
    tasks: Sequence[str],
    models: Sequence[str],
    out: str | os.PathLike,
    *,
    cpu_budget: float | None = None,
    updates: int | None = None,
    data: dict[str, str | None] | None = None,
    memory_limit_gib: float | None = None,
    limit: int | None = None,
    test_examples: int | None = None,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    tune: bool = False,
    verbose: int = 1,
    emit: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Trains every (task, model) pair for `cpu_budget` CPU seconds or `updates` optimizer
    updates each (both: whichever comes first); returns
    `{"results", "table", "plot"}` paths (and writes them). `emit(cell)` is called with each
    pair's result as it finishes (the command line prints it as a JSON line).

    Args:
        tasks: registered task names (`spectralmix.tasks.registry.task_names()`).
        models: registered token mixer names (`spectralmix.registry.token_mixer_names()`).
        out: the arena directory.
        cpu_budget: CPU seconds (process time, all threads) each pair may train for.
        updates: optimizer updates each pair makes (`harness.train`'s `updates`): equal
            updates rather than equal CPU, so capacity can be read apart from speed. A pair
            that the `cpu_budget` cap stops first shows how far it got.
        data: where each data set is, by the name its tasks register (`data_names()`);
            missing ones are searched for by the readers (or generated, for Pathfinder).
        memory_limit_gib: address-space limit of each pair's process (default: three
            quarters of the machine's memory).
        limit: the first `limit` examples of every split (smoke runs).
        test_examples: test examples scored (default: each task's registered cap).
        seed: seed of the data splits and the generators, and (without `seeds`) of the
            data order and the initial weights.
        seeds: training seeds (data order and initial weights): each pair runs once per
            seed, in `OUT/TASK/MODEL/seed-S/`, on the same splits; the results add a table
            across seeds (mean ± standard deviation, a 95% t-interval over the seeds).
        tune: before its runs, each pair tries every setting of `TUNING_GRID` (learning rate
            × model width) with `TUNING_FRACTION` of its budget, in `OUT/TASK/MODEL/tune/`,
            and keeps the best on validation (the test split is not read); every mixer gets
            the same trials. The chosen settings and the trials are in each cell (`tuning`).
    """
    from spectralmix.registry import get_token_mixer

    tasks = [get_task(t).name for t in tasks]
    models = [get_token_mixer(m).token_mixer_name for m in models]
    if not tasks or not models:
        raise ValueError(f"Give at least one task and one model. Received: {tasks}, {models}")
    if cpu_budget is None and updates is None:
        raise ValueError("Give cpu_budget, updates or both. Received: neither")
    cpu_budget = harness.positive_number("cpu_budget", cpu_budget, allow_none=True)
    if updates is not None:
        updates = validation.positive_int("updates", updates)
    if seeds is not None:
        seeds = [validation.integer("seeds", s, minimum=0) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, at least one. Received: seeds={seeds}")
    seed = validation.integer("seed", seed, minimum=0)
    test_examples = validation.optional_positive_int("test_examples", test_examples)
    memory_limit_gib = harness.positive_number(
        "memory_limit_gib", memory_limit_gib or default_memory_limit_gib()
    )
    data = dict(data or {})
    unknown = set(data) - set(data_names())
    if unknown:
        raise ValueError(f"Unknown data names {sorted(unknown)}; known: {list(data_names())}")
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"out must be a directory. Received: out={out!r} (a file)")
    os.makedirs(out, exist_ok=True)
    import keras

    backend = keras.config.backend()
    cells = []

    def record(cell):
        """Keeps, prints and writes one cell; the files are rewritten after every pair, so
        they hold every finished one at any time."""
        cells.append(cell)
        if emit:
            emit(cell)
        return _write_results(out, cells, cpu_budget, memory_limit_gib, backend, updates)

    for task_name in tasks:
        entry = get_task(task_name)
        task_options = {"data": data.get(entry.data), "seed": seed}
        task_options["test_examples"] = test_examples
        # Found before any child starts: a missing dataset is reported at once.
        task = make_task(task_name, **task_options)
        for model in models:
            refused = _refusal(task, model)
            if refused is not None:
                cell = {
                    "status": "not_entered",
                    "reason": refused,
                    "task": task_name,
                    "model": model,
                    "backend": backend,
                    "sequence_length": task.sequence_length,
                    **_metric_field(task),
                }
                paths = record(cell)
                continue
            batch_size = task.train_defaults["batch_size"]
            accumulate = plan_accumulation(task, model, batch_size, memory_limit_gib * 2**30)
            base = {
                "task": task_name,
                "task_options": task_options,
                "modules": plugin_modules(task_name, model),
                "memory_limit_gib": memory_limit_gib,
            }
            budget = {
                "cpu_budget": cpu_budget,
                **({"updates": updates} if updates is not None else {}),
            }
            chosen, tuning = {}, None
            if tune:
                chosen, tuning = _tune(
                    task,
                    base,
                    budget,
                    os.path.join(out, task_name, model, "tune"),
                    model=model,
                    accumulate=accumulate,
                    limit=limit,
                    seed=seed,
                    verbose=verbose,
                )
            tuning_failed = None
            if tuning is not None and chosen is None:  # every trial failed: no run to make
                statuses = {t["status"] for t in tuning["trials"]}
                tuning_failed = _failed_cell(
                    task,
                    out_of_memory=statuses == {"out_of_memory"},
                    error="every tuning trial failed: " + ", ".join(sorted(statuses)),
                    micro_batch=batch_size // accumulate,
                    memory_limit_gib=memory_limit_gib,
                )
            for train_seed in seeds or [seed]:
                if tuning_failed is not None:
                    cell = dict(tuning_failed)
                else:
                    run_dir = os.path.join(out, task_name, model)
                    if seeds is not None:
                        run_dir = os.path.join(run_dir, f"seed-{train_seed}")
                    spec = _pair_spec(
                        base,
                        run_dir,
                        model=model,
                        **budget,
                        accumulate=accumulate,
                        limit=limit,
                        seed=train_seed,
                        verbose=verbose,
                        **chosen,
                    )
                    cell = _run_cell(spec, task)
                cell.update(task=task_name, model=model, backend=backend)
                if seeds is not None:
                    cell["seed"] = train_seed
                if tuning is not None:
                    cell["tuning"] = tuning
                paths = record(cell)
    return paths


#: The settings every pair tries under `tune=True`: learning rate × model width (the same
#: trials for every mixer), each with `TUNING_FRACTION` of the pair's budget.
TUNING_GRID: dict[str, tuple] = {"learning_rate": (5e-4, 1e-3, 2e-3), "hidden_dim": (32, 64)}
TUNING_FRACTION = 0.25


def _tune(task, base, budget, tune_dir, *, model, accumulate, limit, seed, verbose):
    """Runs every `TUNING_GRID` setting for one pair (validation only); returns the chosen
    `train_options` and `{"grid", "fraction", "trials", "chosen"}`."""
    metric = task.metric
    trial_budget = {
        key: (
            value * TUNING_FRACTION if key == "cpu_budget" else max(1, int(value * TUNING_FRACTION))
        )
        for key, value in budget.items()
        if value is not None
    }
    trials = []
    for learning_rate in TUNING_GRID["learning_rate"]:
        for hidden_dim in TUNING_GRID["hidden_dim"]:
            settings = {"learning_rate": learning_rate, "model_options": {"hidden_dim": hidden_dim}}
            run_dir = os.path.join(tune_dir, f"lr={learning_rate:g},hidden_dim={hidden_dim}")
            spec = _pair_spec(
                base,
                run_dir,
                model=model,
                **{"cpu_budget": None, **trial_budget},
                accumulate=accumulate,
                limit=limit,
                seed=seed,
                verbose=verbose,
                read_test=False,
                **settings,
            )
            cell = _run_cell(spec, task)
            score = cell.get(f"val_{metric}") if cell["status"] == "done" else None
            trials.append({**settings, f"val_{metric}": score, "status": cell["status"]})
    scored = [t for t in trials if t[f"val_{metric}"] is not None]
    record = {
        "grid": {k: list(v) for k, v in TUNING_GRID.items()},
        "fraction": TUNING_FRACTION,
        "trials": trials,
    }
    if not scored:  # the pair is recorded as failed (or out of memory), the arena goes on
        return None, {**record, "chosen": None}
    pick = max if harness.METRICS[metric] == "max" else min
    best = pick(scored, key=lambda t: t[f"val_{metric}"])
    chosen = {"learning_rate": best["learning_rate"], "model_options": best["model_options"]}
    return chosen, {**record, "chosen": chosen}


def _pair_spec(base: dict[str, Any], run_dir: str, **train_options) -> dict[str, Any]:
    """What a pair's child process gets: `base`, its run directory (made here), its log and
    the keyword arguments of its `harness.train`."""
    os.makedirs(run_dir, exist_ok=True)
    return {
        **base,
        "run_dir": run_dir,
        "log": os.path.join(run_dir, "stderr.log"),
        "train_options": train_options,
    }


def _refusal(task: harness.Task, model: str) -> str | None:
    """Why `task` refuses token mixer `model` (`harness.check_entry`'s message), or None."""
    try:
        harness.check_entry(task, model)
    except ValueError as error:
        return " ".join(str(error).split())
    return None


def _metric_field(task: harness.Task) -> dict[str, str]:
    """`{"metric": ...}` for a task scored otherwise than by accuracy (whose metrics carry
    it too); nothing for accuracy, so that its cells are as they always were."""
    return {} if task.metric == "accuracy" else {"metric": task.metric}


def _run_cell(spec: dict[str, Any], task: harness.Task) -> dict[str, Any]:
    """Runs (or reuses) one pair; its metrics, or `{"status": "out_of_memory"|"failed"}`."""
    from spectralmix.tasks import checkpointing

    run_dir = spec["run_dir"]
    metrics_path = os.path.join(run_dir, "metrics.json")
    failure_path = os.path.join(run_dir, "failure.json")
    accumulate = spec["train_options"]["accumulate"]
    micro_batch = task.train_defaults["batch_size"] // accumulate
    # A finished or failed pair is reused only under the arguments it ran with.
    metrics = harness.finished_metrics(task, run_dir, **spec["train_options"])
    if os.path.isfile(failure_path):
        with open(failure_path, encoding="utf-8") as f:
            recorded = json.load(f).get("train_options")
        if recorded is not None and recorded != _defining(spec["train_options"]):
            raise ValueError(
                f"{run_dir!r} holds a failed pair run with other options; choose another "
                f"--out or remove its failure.json. Received: {_defining(spec['train_options'])}"
                f"; the pair had {recorded}"
            )
    if metrics is None and not os.path.isfile(failure_path):
        busy = _check_quiet(spec["task"], spec["train_options"]["model"])
        checkpointing.atomic_write_text(
            os.path.join(run_dir, "machine.json"), json.dumps({"busy_cores_before": busy})
        )
        process = multiprocessing.get_context("spawn").Process(target=_cell, args=(spec,))
        process.start()
        process.join()
        if process.exitcode in (INTERRUPTED, -signal.SIGINT, -signal.SIGTERM):
            raise KeyboardInterrupt(
                f"{spec['task']}/{spec['train_options']['model']} was interrupted (status "
                f"{process.exitcode}); run the same command again to resume it"
            )
        if process.exitcode and not os.path.isfile(failure_path):
            log = _tail(spec["log"])
            failure = {
                "error": f"the process ended with status {process.exitcode}: "
                + " ".join(log.split()[-40:]),
                "out_of_memory": process.exitcode == -9 or _looks_like_oom(log),
                "train_options": _defining(spec["train_options"]),
            }
            checkpointing.atomic_write_text(failure_path, json.dumps(failure))
    machine_path = os.path.join(run_dir, "machine.json")
    machine = {}
    if os.path.isfile(machine_path):
        with open(machine_path, encoding="utf-8") as f:
            machine = json.load(f)
    if metrics is None and os.path.isfile(metrics_path):  # made just now
        with open(metrics_path, encoding="utf-8") as f:
            metrics = json.load(f)
    if metrics is not None:
        return {"status": "done", "micro_batch": micro_batch, **machine, **metrics}
    with open(failure_path, encoding="utf-8") as f:
        failure = json.load(f)
    return {
        **_failed_cell(
            task,
            out_of_memory=failure["out_of_memory"],
            error=failure["error"],
            micro_batch=micro_batch,
            memory_limit_gib=spec["memory_limit_gib"],
        ),
        "arguments": {**spec["train_options"], "source": dict(task.source)},
    }


def _failed_cell(task, *, out_of_memory, error, micro_batch, memory_limit_gib) -> dict[str, Any]:
    """A pair that did not finish: `"out_of_memory"` or `"failed"`, with what it tried."""
    return {
        "status": "out_of_memory" if out_of_memory else "failed",
        "error": error,
        "sequence_length": task.sequence_length,
        "micro_batch": micro_batch,
        "memory_limit_gib": memory_limit_gib,
        **_metric_field(task),
    }


def table(cells: Sequence[dict[str, Any]]) -> str:
    """The results as Markdown: a table of the pairs scored by accuracy, one row per pair,
    then (where there are any) a table of those scored in bits per byte and one of those
    scored by query accuracy."""
    accuracy = [c for c in cells if c.get("metric", "accuracy") == "accuracy"]
    bits = [c for c in cells if c.get("metric") == "bits_per_byte"]
    queries = [c for c in cells if c.get("metric") == "query_accuracy"]
    parts = [_accuracy_table(accuracy)] if accuracy or not (bits or queries) else []
    if bits:
        parts.append(_bits_per_byte_table(bits))
    if queries:
        parts.append(_accuracy_table(queries, "query_accuracy"))
    across = _seeds_table(cells)
    if across:
        parts.append(across)
    return "\n".join(parts)


#: Two-sided 95% quantiles of Student's t for 1 to 30 degrees of freedom.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    """Student's t quantile at 0.975 for `df` degrees of freedom (a table to 30, then the
    Cornish-Fisher expansion around the normal quantile, within 1e-3).

    Examples:
        >>> t_quantile_975(2), round(t_quantile_975(100), 3)
        (4.303, 1.984)
    """
    df = validation.positive_int("df", df)
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def seed_summary(values: Sequence[float]) -> dict[str, float]:
    """`{"mean", "sd", "low", "high"}` of one score over seeds: the mean, the sample standard
    deviation and the 95% t-interval of the mean over the seeds (`mean ± t · sd / √k`), which
    covers training's randomness (initialisation, data order), not the test sample's.

    Examples:
        >>> {k: round(v, 4) for k, v in seed_summary([0.70, 0.72, 0.74]).items()}
        {'mean': 0.72, 'sd': 0.02, 'low': 0.6703, 'high': 0.7697}
    """
    values = [float(v) for v in values]
    if len(values) < 2:
        raise ValueError(f"Need two seeds or more. Received: {len(values)} value(s)")
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = t_quantile_975(len(values) - 1) * sd / math.sqrt(len(values))
    return {"mean": mean, "sd": sd, "low": mean - half, "high": mean + half}


def _seeds_table(cells: Sequence[dict[str, Any]]) -> str:
    """Pairs run with two seeds or more: each score's mean ± standard deviation over the
    seeds, its 95% t-interval, and the updates and CPU seconds on average."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for c in cells:
        if c["status"] == "done" and "seed" in c:
            key = (c["task"], c["model"], c.get("metric", "accuracy"))
            groups.setdefault(key, []).append(c)
    rows = []
    for (task, model, metric), runs in groups.items():
        if len(runs) < 2:
            continue
        summary = seed_summary([r[f"test_{metric}"] for r in runs])
        seeds = ", ".join(str(r["seed"]) for r in runs)
        rows.append(
            f"| {task} | {model} | {metric.replace('_', ' ')} | {runs[0]['sequence_length']:,} "
            f"| {len(runs)} ({seeds}) | {summary['mean']:.4f} ± {summary['sd']:.4f} "
            f"| [{summary['low']:.4f}, {summary['high']:.4f}] "
            f"| {statistics.fmean(r['updates'] for r in runs):,.0f} "
            f"| {statistics.fmean(r['train_cpu_seconds'] for r in runs):,.0f} |"
        )
    if not rows:
        return ""
    header = [
        "| task | model | metric | tokens | seeds | test mean ± sd | 95% interval over seeds "
        "| updates (mean) | train CPU s (mean) |",
        "|---|---|---|---:|---|---|---|---:|---:|",
    ]
    return "\n".join(header + rows) + "\n"


#: The glance table's columns: these mixers first, in this order, then any others.
GLANCE_ORDER = ("fftnet", "fnet", "gfnet", "gfnet_2d", "hyena", "attention")


def glance(records: Sequence[dict[str, Any]]) -> str:
    """Tasks by mixers, one table for several arena runs (`results.json` records, e.g. the
    spectral mixers on JAX and attention on PyTorch): one row per task and view (`B CPU s`
    for a CPU budget, `N updates` for equal updates), one column per mixer. A cell gives the
    test score's mean ± standard deviation over its seeds, the seeds, the updates made (or
    "M of N" where a CPU cap stopped them) and the CPU seconds, and the backend; a pair
    without a score says why. Where one mixer ran a task and view on two backends, the row
    splits into one row per backend (`240 CPU s, torch`), so no cell mixes backends.

    Raises:
        ValueError: when two records hold the same (task, view, mixer, backend, seed), so a
            cell would mix runs.

    Examples:
        >>> cell = {"status": "done", "task": "text", "model": "fnet", "metric": "accuracy",
        ...         "backend": "jax", "updates": 400, "train_cpu_seconds": 241.0}
        >>> runs = [{**cell, "seed": 0, "test_accuracy": 0.94},
        ...         {**cell, "seed": 1, "test_accuracy": 0.96}]
        >>> print(glance([{"cpu_budget": 240.0, "updates": None, "cells": runs}]))
        | task | view | fnet |
        |---|---|---|
        | text | 240 CPU s | 0.9500 ± 0.0141 (2 seeds; 400 updates, 241 CPU s; jax) |
        <BLANKLINE>
    """
    rows: dict[tuple[str, str], dict[tuple[str, str], list[dict[str, Any]]]] = {}
    seen: set[tuple] = set()
    for record in records:
        if record.get("updates"):
            view = f"{record['updates']:,} updates"
        else:
            view = f"{record['cpu_budget']:,.0f} CPU s"
        for c in record["cells"]:
            c = {**c, "backend": c.get("backend", record.get("backend"))}
            key = (c["task"], view, c["model"], c["backend"], c.get("seed"))
            if key in seen:
                raise ValueError(
                    "Each (task, view, mixer, backend, seed) must come from one record only. "
                    f"Received it twice: {key}"
                )
            seen.add(key)
            rows.setdefault((c["task"], view), {}).setdefault((c["model"], c["backend"]), [])
            rows[c["task"], view][c["model"], c["backend"]].append(c)
    models = {model for row in rows.values() for model, _ in row}
    columns = [m for m in GLANCE_ORDER if m in models] + sorted(models - set(GLANCE_ORDER))
    lines = [
        "| task | view | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for (task, view), row in rows.items():
        ran = [model for model, _ in row]
        if len(ran) == len(set(ran)):  # each mixer on one backend: one row
            split = {view: {model: runs for (model, _), runs in row.items()}}
        else:
            split = {}
            for (model, backend), runs in row.items():
                split.setdefault(f"{view}, {backend}", {})[model] = runs
        for label, by_model in split.items():
            cells = [_glance_cell(by_model.get(model, [])) for model in columns]
            lines.append(f"| {task} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _glance_cell(runs: Sequence[dict[str, Any]]) -> str:
    """One cell of `glance`: the runs of one (task, view, mixer) over its seeds."""
    if not runs:
        return "not run"
    done = [c for c in runs if c["status"] == "done"]
    if not done:
        return _unfinished(runs[0])
    scores = [c[f"test_{c.get('metric', 'accuracy')}"] for c in done]
    if len(scores) > 1:
        summary = seed_summary(scores)
        score = f"{summary['mean']:.4f} ± {summary['sd']:.4f} ({len(scores)} seeds"
    else:
        score = f"{scores[0]:.4f} (1 seed"
    made = [c["updates"] for c in done]
    targets = {(c.get("arguments") or {}).get("updates") for c in done}
    target = targets.pop() if len(targets) == 1 else None
    updates = f"{statistics.fmean(made):,.0f}"
    if target is not None and min(made) < target:
        updates = f"{updates} of {target:,}"
    cpu = statistics.fmean(c["train_cpu_seconds"] for c in done)
    missing = f"; {len(runs) - len(done)} failed" if len(done) < len(runs) else ""
    backends = "/".join(sorted({c["backend"] for c in done}))
    return f"{score}; {updates} updates, {cpu:,.0f} CPU s; {backends}{missing})"


def _unfinished(c: dict[str, Any]) -> str:
    """What the table says of a pair that has no score."""
    if c["status"] == "not_entered":
        # Its first clause ("... is not causal ..."); results.json keeps the whole reason.
        return f"not entered: {c['reason'].split('; ')[0].split('. Received:')[0]}"
    if c["status"] == "out_of_memory":
        return (
            f"out of memory at {c['sequence_length']:,} tokens, measured "
            f"({c['micro_batch']} example(s) a step, {c['memory_limit_gib']} GiB limit)"
        )
    return f"failed: {c['error'][:120]}"


def _model(c: dict[str, Any]) -> str:
    """The model column: the mixer, and its training seed where the arena ran several."""
    return f"{c['model']} (seed {c['seed']})" if "seed" in c else c["model"]


def _updates(c: dict[str, Any]) -> str:
    """The updates a pair made; "N of M" where it was to make M (`updates`) and a CPU cap
    stopped it first."""
    target = (c.get("arguments") or {}).get("updates")
    if target is not None and c["updates"] < target:
        return f"{c['updates']:,} of {target:,}"
    return f"{c['updates']:,}"


def _bits_per_byte_table(cells: Sequence[dict[str, Any]]) -> str:
    """Bits per byte on the test documents, lower is better, beside gzip's and xz's on the
    same documents, each document compressed on its own as each is scored on its own (then
    all of them concatenated, in brackets)."""
    lines = [
        "| task | model | context | test bits per byte [95% CI] | val | gzip -9 (concat.) "
        "| xz -9e (concat.) | parameters | updates (steps) | batch / step | train CPU s "
        "| train wall s |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        head = f"| {c['task']} | {_model(c)} | {c['sequence_length']:,} |"
        if c["status"] != "done":
            lines.append(f"{head} {_unfinished(c)} | | | | | | | | |")
            continue
        low, high = c["test_ci95"]
        reference = (c.get("data") or {}).get("test_reference_bits_per_byte", {})
        compressed = [
            f"{reference[name]['per_document']:.4f} ({reference[name]['concatenated']:.4f})"
            if name in reference
            else ""
            for name in ("gzip", "xz")
        ]
        lines.append(
            f"{head} {c['test_bits_per_byte']:.4f} [{low:.4f}, {high:.4f}] "
            f"(n={c['test_examples']:,} documents, {c['test_bytes']:,} bytes)"
            f" | {c['val_bits_per_byte']:.4f} | {compressed[0]} | {compressed[1]}"
            f" | {c['parameters']:,} | {_updates(c)} ({c['steps']:,})"
            f" | {c['micro_batch']} | {c['train_cpu_seconds']:,.0f} | {c['train_seconds']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def _accuracy_table(cells: Sequence[dict[str, Any]], metric: str = "accuracy") -> str:
    """Accuracy per pair (`metric="accuracy"`, n = test examples), or query accuracy
    (`"query_accuracy"`, n = test sequences and the queries they ask)."""
    lines = [
        f"| task | model | tokens | test {metric.replace('_', ' ')} [95% CI] | val | parameters "
        "| updates (steps) "
        "| batch / step | train CPU s | train wall s |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        head = f"| {c['task']} | {_model(c)} | {c['sequence_length']:,} |"
        if c["status"] != "done":
            lines.append(f"{head} {_unfinished(c)} | | | | | | |")
            continue
        low, high = c["test_ci95"]
        n = f"n={c['test_examples']:,}"
        if metric == "query_accuracy":
            n += f" sequences, {c['test_queries']:,} queries"
        lines.append(
            f"{head} {c[f'test_{metric}']:.4f} [{low:.4f}, {high:.4f}] ({n})"
            f" | {c[f'val_{metric}']:.4f} | {c['parameters']:,} | {_updates(c)} ({c['steps']:,})"
            f" | {c['micro_batch']} | {c['train_cpu_seconds']:,.0f} | {c['train_seconds']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


#: What the arena says instead of drawing its plot when matplotlib is missing.
NO_MATPLOTLIB = (
    "spectralmix arena: no plot ({path}): matplotlib is not installed; "
    "pip install 'spectralmix[plot]' draws it"
)


def plot(cells: Sequence[dict[str, Any]], path: str) -> str | None:
    """Test accuracy against training CPU seconds, a colour per model and a marker per
    task, with 95% intervals; pairs scored in bits per byte in a panel of their own beside it,
    with gzip's and xz's bits per byte on the same documents as dashed and dotted lines.
    Returns `path`, or None without matplotlib (the `plot` extra), saying so in one line on
    stderr."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(NO_MATPLOTLIB.format(path=path), file=sys.stderr)
        return None
    done = [c for c in cells if c["status"] == "done"]
    # As many markers and colours as there are tasks and mixers: both cycle.
    task_order = list(dict.fromkeys(c["task"] for c in cells))
    model_order = list(dict.fromkeys(c["model"] for c in cells))
    markers = dict(zip(task_order, itertools.cycle("osD^vP<>*hX"), strict=False))
    palette = [f"C{i}" for i in range(10)]
    colours = dict(zip(model_order, itertools.cycle(palette), strict=False))
    metrics = {c.get("metric", "accuracy") for c in cells} or {"accuracy"}
    panels = [
        panel
        for panel in (
            ("accuracy", "test_accuracy", "test accuracy"),
            ("bits_per_byte", "test_bits_per_byte", "test bits per byte (lower is better)"),
            ("query_accuracy", "test_query_accuracy", "test query accuracy (in-context recall)"),
        )
        if panel[0] in metrics
    ]
    figure, grid = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    for axes, (metric, key, label) in zip(grid[0], panels, strict=True):
        shown = [c for c in done if c.get("metric", "accuracy") == metric]
        for c in shown:
            low, high = c["test_ci95"]
            axes.errorbar(
                c["train_cpu_seconds"],
                c[key],
                yerr=[[c[key] - low], [high - c[key]]],
                fmt=markers[c["task"]],
                color=colours[c["model"]],
                capsize=3,
            )
        for task in dict.fromkeys(c["task"] for c in shown):
            reference = next(
                (c.get("data") or {}).get("test_reference_bits_per_byte", {})
                for c in shown
                if c["task"] == task
            )
            # xz compresses better than gzip: its label below its line, gzip's above.
            for name, style, side in (("gzip", "--", "bottom"), ("xz", ":", "top")):
                if name in reference:
                    value = reference[name]["per_document"]
                    axes.axhline(value, color="grey", linestyle=style, linewidth=1)
                    axes.annotate(
                        f" {task}: {name} {value:.2f}",
                        (0, value),
                        xycoords=("axes fraction", "data"),
                        fontsize=7,
                        color="grey",
                        va=side,
                    )
        for model, colour in colours.items():
            if any(c["model"] == model for c in shown):
                axes.plot([], [], "s", color=colour, label=model)
        for task, marker in markers.items():
            if any(c["task"] == task for c in shown):
                axes.plot([], [], marker, color="grey", label=task)
        axes.set_xlabel("training CPU seconds")
        axes.set_ylabel(label)
        if shown:  # with no finished pair there is nothing to label
            axes.legend(fontsize=8, ncols=2)
        axes.grid(alpha=0.3)
    handle = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    figure.savefig(handle, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)
    os.replace(handle, path)
    return path


def _write_results(
    out, cells, cpu_budget, memory_limit_gib, backend, updates=None
) -> dict[str, Any]:
    from spectralmix.tasks import checkpointing

    results = os.path.join(out, "results.json")
    record = {
        "backend": backend,
        "cpu_budget": cpu_budget,
        "updates": updates,
        "memory_limit_gib": memory_limit_gib,
        "cells": list(cells),
    }
    checkpointing.atomic_write_text(results, json.dumps(record, indent=1) + "\n")
    markdown = os.path.join(out, "results.md")
    checkpointing.atomic_write_text(markdown, table(cells))
    return {
        "results": results,
        "table": markdown,
        "plot": plot(cells, os.path.join(out, "results.png")),
    }
