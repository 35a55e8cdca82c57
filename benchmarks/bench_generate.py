"""Cached generation against recomputing the prefix: time per generated token at long prefixes
(`docs/benchmarks.md`, "Cached generation").

    KERAS_BACKEND=jax python benchmarks/bench_generate.py [--mixers hyena attention]
        [--prefixes 1024 8192 65536] [--tokens 8] [--repeats 3] [--out PATH]

Runs on the active backend (one process: every ratio is measured in it) and writes
`benchmarks/results/generate-cpu-<backend>.json`. For each token mixer, one small
`FFTNetCausalLM` (width 64, 2 pre-norm blocks, 4 heads, initial weights) long enough for the
longest prefix; at each prefix length `P`:

- `cached_ms_per_token`: the prompt of `P` bytes goes into the cache (`init_cache`,
  `call_with_cache`: in one call, or in chunks where one call's attention scores would exceed
  `--memory-budget`), then `--tokens` single-token steps, each timed alone, through the step
  `generate` runs (`FFTNetCausalLM.step_function`: `jax.jit`, `tf.function`, eager torch);
  the median, a first (compiling) step excluded. The cache holds `P + tokens + 1` positions.
- `recompute_ms_per_token`: one full forward pass over the `P`-token prefix (compiled the same
  way), what each new token costs without a cache; the median of `--repeats` after a warm-up
  call, each timed right after one of the cached steps (interleaved, so that drifts in the
  machine's speed reach both sides alike). Skipped (`"over_memory"`) where its attention
  scores (`heads · P²` float32, three copies) exceed `--memory-budget`.
- `speedup`: recompute over cached, the same process and model.
- `max_abs_logit_difference`: the prompt's last logits from the cache against the full pass.

Both sides block until the logits are on the host as NumPy (what `generate` needs per byte).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness

HERE = os.path.dirname(os.path.abspath(__file__))
MIXERS = ("hyena", "attention")
WIDTH, LAYERS, HEADS = 64, 2, 4
SCORE_COPIES = 3  # scores, probabilities and the mask (or a softmax temporary)


def _model(mixer: str, max_sequence_length: int):
    from spectralmix.models import FFTNetBackbone, FFTNetCausalLM, causal_mixer_kwargs

    backbone = FFTNetBackbone(
        vocabulary_size=257,
        max_sequence_length=max_sequence_length,
        hidden_dim=WIDTH,
        num_layers=LAYERS,
        num_heads=HEADS,
        token_mixer=mixer,
        token_mixer_kwargs=causal_mixer_kwargs(mixer),
        norm_first=True,
    )
    return FFTNetCausalLM(backbone=backbone)


def _full_forward(lm, backend: str):
    """`ids (1, P) -> last logits (vocabulary,)` as NumPy: the whole prefix, compiled."""
    import keras

    if backend == "jax":
        import jax

        trainable = [v.value for v in lm.trainable_variables]
        non_trainable = [v.value for v in lm.non_trainable_variables]

        @jax.jit
        def last(ids):
            logits, _ = lm.stateless_call(trainable, non_trainable, ids, training=False)
            return logits[0, -1]

        return lambda ids: np.asarray(last(ids))
    if backend == "tensorflow":
        import tensorflow as tf

        last = tf.function(lambda ids: lm(ids, training=False)[0, -1])
        return lambda ids: last(tf.constant(ids)).numpy()
    import torch

    def last(ids):
        with torch.no_grad():
            return keras.ops.convert_to_numpy(lm(ids, training=False)[0, -1])

    return last


def _scores_bytes(mixer: str, queries: int, keys: int) -> int:
    return HEADS * queries * keys * 4 * SCORE_COPIES if mixer == "attention" else 0


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _measure_prefix(lm, mixer, full, ids, prefix, tokens, repeats, budget) -> dict:
    """Prefill, then `tokens` single-token steps; the first `repeats` steps after the first
    (compiling) one each followed by one full pass over the prefix, so that drifts in the
    machine's speed reach both alike."""
    import keras

    def host(logits):
        return np.asarray(keras.ops.convert_to_numpy(logits))

    step = lm.step_function()
    total = prefix + tokens
    cache = lm.init_cache(1, total)
    chunk = prefix
    while chunk > 16 and _scores_bytes(mixer, chunk, total) > budget:
        chunk //= 2
    start = time.perf_counter()
    for done in range(0, prefix, chunk):
        size = min(chunk, prefix - done)
        logits, cache = step(ids[:, done : done + size], cache, np.int32(done))
    prompt_logits = host(logits)[0]
    row = {
        "prefill_s_first_call": round(time.perf_counter() - start, 2),
        "prefill_chunk": chunk,
    }
    recompute = _scores_bytes(mixer, prefix, prefix) <= budget
    if recompute:
        prefix_ids = ids[:, :prefix]
        logits = full(prefix_ids)  # compiles
        row["max_abs_logit_difference"] = float(np.abs(logits - prompt_logits).max())
    cached, recomputed = [], []
    for t in range(prefix, total):
        seconds, (logits, cache) = _timed(
            lambda t=t, cache=cache: step(ids[:, t : t + 1], cache, np.int32(t))
        )
        seconds += _timed(lambda logits=logits: host(logits))[0]
        cached.append(seconds)
        if recompute and t > prefix and len(recomputed) < repeats:
            recomputed.append(_timed(lambda: full(prefix_ids))[0])
    cached_ms = float(np.median(cached[1:]) * 1e3)  # the first step compiles
    row["cached_ms_per_token"] = round(cached_ms, 3)
    if recompute:
        recompute_ms = float(np.median(recomputed) * 1e3)
        row |= {
            "recompute": "ok",
            "recompute_ms_per_token": round(recompute_ms, 3),
            "speedup": round(recompute_ms / cached_ms, 1),
        }
    else:
        row |= {
            "recompute": "over_memory",
            "recompute_scores_gib": round(_scores_bytes(mixer, prefix, prefix) / 2**30, 1),
        }
    return row


def _measure(backend, mixers, prefixes, tokens, repeats, budget, progress):
    import keras

    rows = []
    longest = max(prefixes) + tokens
    for mixer in mixers:
        lm = _model(mixer, longest)
        full = _full_forward(lm, backend)
        rng = np.random.default_rng(0)
        for prefix in prefixes:
            ids = rng.integers(1, 257, (1, prefix + tokens)).astype("int32")
            row = {"mixer": mixer, "prefix": prefix, "timed_tokens": tokens - 1}
            row |= _measure_prefix(lm, mixer, full, ids, prefix, tokens, repeats, budget)
            rows.append(row)
            progress(row)
        keras.backend.clear_session()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixers", nargs="+", default=list(MIXERS))
    parser.add_argument("--prefixes", nargs="+", type=int, default=[1024, 8192, 65536])
    parser.add_argument("--tokens", type=int, default=8, help="timed steps per prefix (+1)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="full passes timed per prefix (<= --tokens)"
    )
    parser.add_argument(
        "--memory-budget",
        type=float,
        default=4.0,
        metavar="GIB",
        help="largest attention-score memory one call may take (default 4)",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch's intra-op threads (default: torch's own)",
    )
    parser.add_argument("--out", help="default: benchmarks/results/generate-cpu-BACKEND.json")
    args = parser.parse_args()

    import keras

    backend = keras.config.backend()
    if backend == "torch" and args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    out = args.out or os.path.join(HERE, "results", f"generate-cpu-{backend}.json")
    load_before = os.getloadavg()
    start = time.time()
    rows = _measure(
        backend,
        args.mixers,
        sorted(args.prefixes),
        args.tokens + 1,  # the first step compiles and is not counted
        args.repeats,
        args.memory_budget * 2**30,
        lambda row: print(json.dumps(row), file=sys.stderr, flush=True),
    )
    payload = {
        "machine": harness.machine(),
        "versions": harness.versions(backend),
        "backend": backend,
        "config": {
            "width": WIDTH,
            "layers": LAYERS,
            "heads": HEADS,
            "timed_tokens": args.tokens,
            "repeats": args.repeats,
            "memory_budget_gib": args.memory_budget,
            "torch_threads": args.torch_threads,
        },
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "seconds": round(time.time() - start, 1),
        "rows": rows,
    }
    harness.write_json(out, payload)
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
