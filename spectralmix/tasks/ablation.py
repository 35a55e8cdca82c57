"""Validation-only ablations: variants of one task's model or training, each trained once
per seed for the same number of updates, compared on the validation split.

The arena compares mixers and reads each pair's test split once. An ablation asks why two
of them differ (a smaller filter, another pooling, another learning rate) and must not spend
the test split on the question: every run here is `harness.train(read_test=False)`, and the
results hold validation scores only.

    spectralmix ablate --task text --updates 300 --seeds 0 1 2 --out runs/text-gap \\
        --variant fftnet=fftnet --variant fftnet-bins65=fftnet:filter_bins=65 \\
        --variant fftnet-lr2e-3=fftnet:learning_rate=0.002

A variant is `NAME=MIXER[:KEY=VALUE,...]`. Keys that name a training argument
(`TRAINING_KEYS`) go to `harness.train`; the others are the model's options (the
backbone's arguments, `pooling`, ...), and `KEY.SUB=VALUE` sets one key of a dict option
(`token_mixer_kwargs.modrelu_epsilon=0`). Values are read as JSON where they parse
(`65`, `0.002`, `true`, `"cls"`), else as text.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from collections.abc import Sequence
from typing import Any

from spectralmix import validation
from spectralmix.registry import get_token_mixer

#: Variant keys that are `harness.train`'s arguments rather than the model's.
TRAINING_KEYS = ("learning_rate", "batch_size", "warmup_steps", "weight_decay", "augment")


def parse_variant(text: str) -> dict[str, Any]:
    """`{"name", "model", "model_options", "training"}` from `NAME=MIXER[:KEY=VALUE,...]`.

    Examples:
        >>> parse_variant("small=fftnet:filter_bins=65,learning_rate=0.002")["training"]
        {'learning_rate': 0.002}
        >>> parse_variant("eps=fftnet:token_mixer_kwargs.modrelu_epsilon=0")["model_options"]
        {'token_mixer_kwargs': {'modrelu_epsilon': 0}}
    """
    if not isinstance(text, str):
        raise TypeError(f"A variant must be a string. Received: {text!r}")
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"A variant is NAME=MIXER[:KEY=VALUE,...]. Received: {text!r}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
        raise ValueError(
            "A variant's NAME names its directory: letters, digits and _ . + - (not first). "
            f"Received: {name!r} in {text!r}"
        )
    model, _, settings = rest.partition(":")
    model = get_token_mixer(model).token_mixer_name
    model_options: dict[str, Any] = {}
    training: dict[str, Any] = {}
    for item in filter(None, settings.split(",")):
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"A variant's setting is KEY=VALUE. Received: {item!r} in {text!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key in TRAINING_KEYS:
            training[key] = value
        elif "." in key:
            outer, _, inner = key.partition(".")
            model_options.setdefault(outer, {})[inner] = value
        else:
            model_options[key] = value
    return {"name": name, "model": model, "model_options": model_options, "training": training}


def run(
    task_name: str,
    variants: Sequence[str | dict[str, Any]],
    out: str | os.PathLike,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    updates: int,
    data: Any = None,
    limit: int | None = None,
    split_seed: int = 0,
    verbose: int | str = 0,
) -> dict[str, Any]:
    """Trains every variant once per seed for `updates` updates on task `task_name`, in
    `OUT/NAME/seed-S/` (a finished run is reused, an unfinished one resumed), scores the
    validation split only, and writes `OUT/results.json` (every run, and each variant's
    mean ± sd over the seeds with its 95% t-interval) and `OUT/results.md`.

    Returns:
        `{"results": path, "table": path, "variants": [summary, ...]}`.
    """
    import keras

    from spectralmix.tasks import checkpointing, harness
    from spectralmix.tasks.registry import make_task

    parsed = [parse_variant(v) if isinstance(v, str) else dict(v) for v in variants]
    names = [v["name"] for v in parsed]
    if not parsed or len(set(names)) != len(names):
        raise ValueError(f"variants must be given, each name once. Received: {names}")
    seeds = [validation.integer("seeds", s, minimum=0) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be one or more distinct seeds. Received: {seeds}")
    updates = validation.positive_int("updates", updates)
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    task = make_task(task_name, data=data, seed=split_seed)
    metric = f"val_{task.metric}"
    summaries = []
    for variant in parsed:
        runs = []
        for seed in seeds:
            path = os.path.join(out, variant["name"], f"seed-{seed}")
            options = {
                "model": variant["model"],
                "updates": updates,
                "seed": seed,
                "limit": limit,
                "model_options": variant["model_options"],
                **variant["training"],
            }
            # A finished run is reused only if it was made with these settings.
            metrics = harness.finished_metrics(task, path, **options)
            if metrics is None:
                keras.backend.clear_session()
                metrics = harness.train(
                    task,
                    path,
                    read_test=False,
                    resume=os.path.exists(os.path.join(path, "state.json")),
                    verbose=verbose,
                    **options,
                )
            runs.append({"seed": seed, **_run_fields(metrics, metric)})
        summaries.append({**variant, "metric": metric, **_over_seeds([r[metric] for r in runs])})
        summaries[-1]["runs"] = runs
    record = {
        "task": task_name,
        "updates": updates,
        "seeds": seeds,
        "backend": keras.config.backend(),
        "test_read": False,
        "variants": summaries,
    }
    results = os.path.join(out, "results.json")
    checkpointing.atomic_write_text(results, json.dumps(record, indent=1) + "\n")
    table = os.path.join(out, "results.md")
    checkpointing.atomic_write_text(table, markdown(record))
    return {"results": results, "table": table, "variants": summaries}


def _over_seeds(scores: Sequence[float]) -> dict[str, Any]:
    """The mean, and with two seeds or more the standard deviation and the 95% t-interval
    over the seeds; one seed has neither (`None`), a quick look rather than a comparison."""
    from spectralmix.tasks.arena import seed_summary

    if len(scores) == 1:
        return {"mean": round(float(scores[0]), 4), "sd": None, "ci95_over_seeds": None}
    summary = seed_summary(scores)
    return {
        "mean": round(summary["mean"], 4),
        "sd": round(summary["sd"], 4),
        "ci95_over_seeds": [round(summary["low"], 4), round(summary["high"], 4)],
    }


def _run_fields(metrics: dict[str, Any], metric: str) -> dict[str, Any]:
    keys = (metric, "updates", "train_cpu_seconds", "parameters", "best_epoch", "test_read")
    return {k: metrics.get(k) for k in keys}


def markdown(record: dict[str, Any]) -> str:
    """`run`'s results as a Markdown table, one row per variant."""
    metric = record["variants"][0]["metric"] if record["variants"] else "val"
    lines = [
        f"| variant | mixer | settings | seeds | {metric.replace('_', ' ')} mean ± sd "
        "| 95% interval over seeds | updates | train CPU s (mean) | parameters |",
        "|---|---|---|---|---|---|---:|---:|---:|",
    ]
    for v in record["variants"]:
        settings = {**v["model_options"], **v["training"]}
        shown = ", ".join(f"{k}={json.dumps(x)}" for k, x in settings.items()) or "defaults"
        runs = v["runs"]
        if v["sd"] is None:
            score, interval = f"{v['mean']:.4f} (one seed)", "none (one seed)"
        else:
            low, high = v["ci95_over_seeds"]
            score, interval = f"{v['mean']:.4f} ± {v['sd']:.4f}", f"[{low:.4f}, {high:.4f}]"
        lines.append(
            f"| {v['name']} | {v['model']} | {shown} | {len(runs)} | {score} | {interval} "
            f"| {runs[0]['updates']:,} "
            f"| {statistics.fmean(r['train_cpu_seconds'] for r in runs):,.0f} "
            f"| {runs[0]['parameters']:,} |"
        )
    return "\n".join(lines) + "\n"
