"""Layer-level speed and memory against sequence length, per backend.

Contenders, batch 8, 256 channels, 8 heads, forward and forward+backward:

- `ours`: `AdaptiveSpectralFilter` (the Keras layer);
- `handwritten`: the same math in the framework alone (no Keras): what the layer costs;
  written once (`_handwritten`) over each framework's own functions (`_framework`);
- `fft_floor`: bare `rfft` + `irfft` along the tokens, the floor a spectral mixer cannot beat;
- `attention`: `keras.layers.MultiHeadAttention` (8 heads of 32);
- `fnet`: `FourierMixing`;
- `fused_attention` (run by `bench_gpu.py`; opt-in elsewhere): the same self-attention as
  `attention` (QKV and output projections, 8 heads of 32) written in the framework around its
  fused kernel: `torch.nn.functional.scaled_dot_product_attention` on `(B, heads, N, 32)`
  (flash / memory-efficient / cuDNN kernels only on a GPU, never the `N²` math path), or
  `jax.nn.dot_product_attention` on `(B, N, heads, 32)` with `implementation="cudnn"` on a GPU
  (`"xla"`, which materialises the scores, elsewhere or where cuDNN refuses; recorded).

Under a mixed policy every contender takes inputs in the compute dtype (bfloat16 for
`mixed_bfloat16`); the hand-written filter and the FFT floor compute their FFTs in float32, as
the layer's spectral island does, and return the compute dtype; the fused attention casts its
float32 weights to the compute dtype, as Keras does. Compiled as Keras runs them: `jax.jit`,
`tf.function`, eager torch (`--torch-compile`: torch's ours, hand-written and floor through
`torch.compile`, as `jit_compile=True` runs a Keras model). A contender whose call
exceeds the time budget, or whose attention matrix would exceed the memory budget, is recorded
as `"over_budget"` at that length and longer ones, not dropped (on a GPU the memory budget
applies only where attention materialises its scores; see `_measure`). Memory is the growth of the
worker process's peak RSS over its value after a warm-up at 64 tokens (one process per backend
and contender, lengths in increasing order, so each row's peak is its own length's).

On a GPU, memory is also read from the accelerator (`peak_device_mb`: torch's peak allocation
at that length; JAX's peak since the worker started), and `--expect-gpu` makes a worker whose
framework computes on the CPU fail instead of timing the CPU. A worker that fails, or a
length that raises (out of memory, say), is recorded with its error, not dropped.

`python benchmarks/bench_layers.py [--lengths 256 1024 ...]` writes
`benchmarks/results/layers-cpu.json`; `plot.py` draws it.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import sys
import time
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness

HERE = os.path.dirname(os.path.abspath(__file__))
CONTENDERS = ("ours", "handwritten", "fft_floor", "attention", "fnet", "fused_attention")
CPU_CONTENDERS = CONTENDERS[:5]
BATCH, CHANNELS, HEADS = 8, 256, 8
DEFAULT_LENGTHS = [256, 1024, 4096, 16384, 65536]
#: The contenders `--torch-compile` runs through `torch.compile` (what Keras's torch trainer
#: does under `jit_compile=True`) instead of eagerly.
TORCH_COMPILED = ("ours", "handwritten", "fft_floor")


def _keras_layer(contender: str, length: int, policy: str):
    import keras

    from spectralmix.layers import AdaptiveSpectralFilter, FourierMixing

    if contender == "ours":
        layer = AdaptiveSpectralFilter(HEADS, max_sequence_length=length, dtype=policy)
    elif contender == "fnet":
        layer = FourierMixing(dtype=policy)
    else:
        attention = keras.layers.MultiHeadAttention(HEADS, key_dim=CHANNELS // HEADS, dtype=policy)
        attention.build((None, length, CHANNELS), (None, length, CHANNELS))

        class SelfAttention(keras.layers.Layer):
            def __init__(self):
                super().__init__(dtype=policy)
                self.attention = attention

            def call(self, x):
                return self.attention(x, x)

        layer = SelfAttention()
    layer.build((None, length, CHANNELS))
    return layer


def _handwritten_params(length: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    bins = length // 2 + 1
    return [
        np.ones((HEADS, bins), "float32"),
        np.full((HEADS, bins), -0.1, "float32"),
        (rng.standard_normal((CHANNELS, CHANNELS)) / 16).astype("float32"),
        np.zeros(CHANNELS, "float32"),
        (rng.standard_normal((CHANNELS, HEADS * bins)) / 16).astype("float32"),
        np.zeros(HEADS * bins, "float32"),
    ]


def _fused_params() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        (rng.standard_normal((CHANNELS, 3 * CHANNELS)) / 16).astype("float32"),
        np.zeros(3 * CHANNELS, "float32"),
        (rng.standard_normal((CHANNELS, CHANNELS)) / 16).astype("float32"),
        np.zeros(CHANNELS, "float32"),
    ]


def _on_gpu(backend: str) -> bool:
    return harness.device(backend)["platform"] == "gpu"


def _fused_attention(backend: str, implementation: str | None = None):
    """`(fused(params, x), implementation)`: self-attention around the framework's fused
    kernel. `implementation` (JAX only) forces `"xla"` or `"cudnn"`."""
    d = CHANNELS // HEADS
    if backend == "jax":
        import jax

        impl = implementation or ("cudnn" if _on_gpu("jax") else "xla")

        def fused(params, x):
            wqkv, bqkv, wo, bo = (p.astype(x.dtype) for p in params)
            b, n, _ = x.shape
            qkv = (x @ wqkv + bqkv).reshape(b, n, 3, HEADS, d)
            o = jax.nn.dot_product_attention(
                qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], implementation=impl
            )
            return o.reshape(b, n, CHANNELS) @ wo + bo

        return fused, f"jax.nn.dot_product_attention(implementation={impl!r})"
    if backend == "torch":
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel

        gpu = torch.cuda.is_available()
        kernels = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
        if hasattr(SDPBackend, "CUDNN_ATTENTION"):
            kernels.append(SDPBackend.CUDNN_ATTENTION)

        def fused(params, x):
            wqkv, bqkv, wo, bo = (p.to(x.dtype) for p in params)
            b, n, _ = x.shape
            qkv = (x @ wqkv + bqkv).reshape(b, n, 3, HEADS, d).permute(2, 0, 3, 1, 4)
            if gpu:
                with sdpa_kernel(kernels):
                    o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
            else:
                o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
            return o.transpose(1, 2).reshape(b, n, CHANNELS) @ wo + bo

        where = "flash / mem-efficient / cuDNN kernels, math excluded" if gpu else "CPU"
        return fused, f"torch.nn.functional.scaled_dot_product_attention ({where})"
    raise ValueError(f"no fused-attention contender for {backend}")


def _framework(backend: str) -> SimpleNamespace:
    """The framework's own functions the hand-written contender and the floor call: the same
    names on every framework. `rfft`/`irfft` act on the last axis with `norm="ortho"`
    (TensorFlow's have no norm: scaled by hand); `fft_pair` is the floor, `rfft` then `irfft`
    along the tokens (axis 1; TensorFlow's FFTs have no axis: tokens moved last and back)."""
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        return SimpleNamespace(
            float32=lambda x: x.astype("float32"),
            cast=lambda x, dtype: x.astype(dtype),
            reshape=jnp.reshape,
            transpose=jnp.transpose,
            where=jnp.where,
            mean=jnp.mean,
            tanh=jnp.tanh,
            relu=jax.nn.relu,
            gelu=functools.partial(jax.nn.gelu, approximate=False),
            complex=lambda r: r,
            rfft=functools.partial(jnp.fft.rfft, norm="ortho"),
            irfft=lambda z, n: jnp.fft.irfft(z, n=n, norm="ortho"),
            fft_pair=lambda x: jnp.fft.irfft(
                jnp.fft.rfft(x, axis=1, norm="ortho"), n=x.shape[1], axis=1, norm="ortho"
            ),
        )
    if backend == "tensorflow":
        import tensorflow as tf

        def fft_pair(x):
            n, xt = x.shape[1], tf.transpose(x, (0, 2, 1))
            return tf.transpose(tf.signal.irfft(tf.signal.rfft(xt), fft_length=[n]), (0, 2, 1))

        return SimpleNamespace(
            float32=lambda x: tf.cast(x, tf.float32),
            cast=tf.cast,
            reshape=tf.reshape,
            transpose=tf.transpose,
            where=tf.where,
            mean=tf.reduce_mean,
            tanh=tf.tanh,
            relu=tf.nn.relu,
            gelu=functools.partial(tf.nn.gelu, approximate=False),
            complex=lambda r: tf.complex(r, tf.zeros_like(r)),
            rfft=lambda x: tf.signal.rfft(x) / math.sqrt(x.shape[-1]),
            irfft=lambda z, n: tf.signal.irfft(z, fft_length=[n]) * math.sqrt(n),
            fft_pair=fft_pair,
        )
    import torch
    import torch.nn.functional as F

    return SimpleNamespace(
        float32=lambda x: x.float(),
        cast=lambda x, dtype: x.to(dtype),
        reshape=torch.reshape,
        transpose=torch.permute,
        where=torch.where,
        mean=torch.mean,
        tanh=torch.tanh,
        relu=torch.relu,
        gelu=F.gelu,
        complex=lambda r: r,
        rfft=functools.partial(torch.fft.rfft, norm="ortho"),
        irfft=lambda z, n: torch.fft.irfft(z, n=n, norm="ortho"),
        fft_pair=lambda x: torch.fft.irfft(
            torch.fft.rfft(x, dim=1, norm="ortho"), n=x.shape[1], dim=1, norm="ortho"
        ),
    )


def _handwritten(fw: SimpleNamespace, params, x):
    """The adaptive spectral filter (v1, modReLU with `epsilon = 0`) written once on `fw`, the
    framework's own functions, with no Keras: the contender that says what the layer costs.
    Deliberately independent of `spectralmix`: complex arithmetic where our cores work on real
    and imaginary parts. Computes in float32 and returns the input's dtype."""
    base, bias, w1, b1, w2, b2 = params
    dtype, x = x.dtype, fw.float32(x)
    n, d = x.shape[1], CHANNELS // HEADS
    k = n // 2 + 1
    context = fw.gelu(fw.mean(x, 1) @ w1 + b1)
    filt = base + fw.tanh(fw.reshape(context @ w2 + b2, (-1, HEADS, k)))
    xt = fw.reshape(fw.transpose(x, (0, 2, 1)), (-1, HEADS, d, n))
    g = fw.rfft(xt) * fw.complex(filt[:, :, None, :])
    mag = abs(g)
    safe = fw.where(mag > 0, mag, 1.0)
    scale = fw.where(mag > 0, fw.relu(mag + bias[:, None, :]) / safe, 0.0)
    y = fw.irfft(g * fw.complex(scale), n)
    return fw.cast(fw.transpose(fw.reshape(y, (-1, HEADS * d, n)), (0, 2, 1)), dtype)


def _fft_floor(fw: SimpleNamespace, x):
    """Bare `rfft` + `irfft` along the tokens, in float32, returning the input's dtype."""
    return fw.cast(fw.fft_pair(fw.float32(x)), x.dtype)


def _framework_functions(backend: str):
    """`(handwritten(params, x), floor(x))` written with `backend` alone, no Keras."""
    fw = _framework(backend)
    return functools.partial(_handwritten, fw), functools.partial(_fft_floor, fw)


def _compute_dtype(policy: str) -> str:
    return {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(policy, policy)


def _runners_of(
    backend: str,
    contender: str,
    length: int,
    policy: str = "float32",
    implementation: str | None = None,
    torch_compile: bool = False,
):
    """`(run_forward, run_forward_backward)`, each blocking until its result is ready."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, length, CHANNELS)).astype("float32")
    dtype = _compute_dtype(policy)
    if contender in ("ours", "attention", "fnet"):
        layer = _keras_layer(contender, length, policy)
        params = None
    elif contender == "fused_attention":
        fused, _ = _fused_attention(backend, implementation)
        params = _fused_params()
    else:
        handwritten, floor = _framework_functions(backend)
        params = _handwritten_params(length) if contender == "handwritten" else []

    def framework_fn(p, xx):
        if contender == "fused_attention":
            return fused(p, xx)
        return handwritten(p, xx) if contender == "handwritten" else floor(xx)

    if backend == "jax":
        import jax

        if params is None:
            values = [v.value for v in layer.trainable_variables]

            def fn(p, xx):
                return layer.stateless_call(p, [], xx)[0]
        else:
            values = [jax.numpy.asarray(p) for p in params]
            fn = framework_fn

        xs = jax.numpy.asarray(x, dtype=dtype)
        # Compiled ahead of time, here: compilation runs on the host, outside the timing lock,
        # so workers side by side compile while another one times.
        fwd = jax.jit(fn).lower(values, xs).compile()
        grad = (
            jax.jit(jax.grad(lambda p, xx: fn(p, xx).astype("float32").sum(), argnums=(0, 1)))
            .lower(values, xs)
            .compile()
        )
        return (
            lambda: fwd(values, xs).block_until_ready(),
            lambda: jax.block_until_ready(grad(values, xs)),
        )
    if backend == "tensorflow":
        import tensorflow as tf

        if params is None:
            variables = layer.trainable_variables

            def fn(xx):
                return layer(xx)
        else:
            variables = [tf.Variable(p) for p in params]

            def fn(xx):
                return framework_fn(variables, xx)

        xs = tf.constant(x, dtype=dtype)
        fwd = tf.function(fn)

        @tf.function
        def grad(xx):
            with tf.GradientTape() as tape:
                tape.watch(xx)
                loss = tf.reduce_sum(tf.cast(fn(xx), tf.float32))
            return tape.gradient(loss, [xx, *variables])

        return (lambda: fwd(xs).numpy(), lambda: [g.numpy() for g in grad(xs) if g is not None])
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if params is None:
        tensors = [v.value for v in layer.trainable_variables]

        def fn(xx):
            return layer(xx)
    else:
        tensors = [torch.tensor(p, device=device, requires_grad=True) for p in params]

        def fn(xx):
            return framework_fn(tensors, xx)

    if torch_compile and contender in TORCH_COMPILED:
        fn = torch.compile(fn, dynamic=False)  # as `model.compile(jit_compile=True)` does
    xs = torch.tensor(x, device=device, dtype=getattr(torch, dtype), requires_grad=True)

    def run_forward():
        with torch.no_grad():
            fn(xs)
        sync()

    def run_forward_backward():
        fn(xs).float().sum().backward()
        sync()
        for t in (xs, *tensors):
            t.grad = None

    return run_forward, run_forward_backward


def _measure(
    backend: str,
    contender: str,
    lengths: list[int],
    repeats: int,
    time_budget_s: float,
    memory_budget_gb: float,
    policy: str,
    expect_gpu: bool = False,
    torch_compile: bool = False,
) -> dict:
    if expect_gpu:
        harness.require_gpu(backend)
    _runners = functools.partial(_runners_of, torch_compile=torch_compile)
    out = {
        "backend": backend,
        "contender": contender,
        "policy": policy,
        "device": harness.device(backend),
        "versions": harness.versions(backend),
    }
    implementation = None
    # Anything that runs on the device holds the timing lock (workers side by side must not
    # share it while one times); JAX compiles in `_runners`, outside it.
    if contender == "fused_attention":
        out["implementation"] = _fused_attention(backend)[1]
        try:
            runs = _runners(backend, contender, 64, policy)  # imports, first compilations
            with harness.timing_lock():
                for run in runs:
                    run()
        except Exception as error:  # cuDNN refusing the shapes, say
            if backend != "jax" or "xla" in out["implementation"]:
                raise
            implementation = "xla"
            out["implementation"] = _fused_attention(backend, "xla")[1]
            out["note"] = f"cuDNN attention failed, fell back to XLA: {str(error)[:300]}"
            runs = _runners(backend, contender, 64, policy, implementation)
            with harness.timing_lock():
                for run in runs:
                    run()
    else:
        runs = _runners(backend, contender, 64, policy)  # imports and first compilations
        with harness.timing_lock():
            for run in runs:
                run()
    # The memory budget guards the N x N score tensors on the CPU, where attention materialises
    # them. On a GPU, MultiHeadAttention goes through `keras.ops.dot_product_attention`, which
    # picks the backend's fused kernels (an H200 run peaked at ~0.3 GB at 4,096 tokens, where
    # the bf16 scores alone are 2 GB), so only an explicit XLA path is presumed to materialise
    # them; out-of-memory there is recorded as an error row.
    materialises_scores = contender in ("attention", "fused_attention") and not _on_gpu(backend)
    materialises_scores = materialises_scores or "'xla'" in out.get("implementation", "")
    start_rss = harness.peak_rss_mb()
    rows = []
    stop = None
    for length in lengths:
        scores_gb = 3 * BATCH * HEADS * length * length * 4 / 1e9  # scores, softmax, grads
        if materialises_scores and scores_gb > memory_budget_gb:
            stop = stop or "over_budget"
        if stop:
            rows.append({"length": length, "status": stop})
            continue
        try:
            harness.reset_device_peak(backend)
            run_forward, run_forward_backward = _runners(
                backend, contender, length, policy, implementation
            )
            with harness.timing_lock():
                start = time.perf_counter()
                run_forward_backward()  # first call: compilation (but JAX's), the budget probe
                first = time.perf_counter() - start
                reps = repeats if first < time_budget_s / 4 else 1
                forward_ms = harness.median_ms(run_forward, reps, warmup=1)
                forward_backward_ms = harness.median_ms(run_forward_backward, reps, warmup=1)
            row = {
                "length": length,
                "status": "ok",
                "forward_ms": forward_ms,
                "forward_backward_ms": forward_backward_ms,
                "repeats": reps,
                "peak_rss_growth_mb": round(harness.peak_rss_mb() - start_rss, 1),
            }
            device_mb = harness.device_peak_mb(backend)
            if device_mb is not None:
                row["peak_device_mb"] = device_mb
        except Exception as error:  # recorded (out of memory, say), not fatal
            rows.append({"length": length, "status": "error", "error": str(error)[:500]})
            stop = "not_run_after_error"
            continue
        finally:
            run_forward = run_forward_backward = None
            gc.collect()
        rows.append(row)
        if row["forward_backward_ms"] / 1e3 > time_budget_s:
            stop = "over_budget"
    out["rows"] = rows
    return out


PAIRED = ("ours", "handwritten", "fft_floor")


def _measure_paired(
    backend: str,
    lengths: list[int],
    repeats: int,
    time_budget_s: float,
    policy: str,
    torch_compile: bool = False,
) -> dict:
    """Ours, hand-written and the FFT floor timed in one process, call by call in turn.

    The per-contender workers time each contender in its own process, minutes apart; on a
    shared 2-core machine that moved the same cell by up to ~50% between runs, as much as the
    margins the targets test. Here, at each length, round `r` times every contender's forward
    and then its forward+backward, starting from contender `r mod 3`, so drifts in the
    machine's speed reach all three alike. `_targets` reads its ratios from these rows.
    """
    _runners = functools.partial(_runners_of, torch_compile=torch_compile)
    out = {
        "backend": backend,
        "kind": "paired",
        "policy": policy,
        "torch_compile": torch_compile and backend == "torch",
        "device": harness.device(backend),
        "versions": harness.versions(backend),
    }
    rows, stop = [], None
    for length in lengths:
        if stop:
            rows.append({"length": length, "status": stop})
            continue
        runs = {c: _runners(backend, c, length, policy) for c in PAIRED}
        with harness.timing_lock():
            start = time.perf_counter()
            for run_forward, run_forward_backward in runs.values():  # compilation, warm-up
                run_forward_backward()
                run_forward()
            first = time.perf_counter() - start
            times = {c: ([], []) for c in PAIRED}
            for r in range(repeats if first < time_budget_s else 1):
                for contender in PAIRED[r % 3 :] + PAIRED[: r % 3]:
                    for timed, run in zip(times[contender], runs[contender], strict=True):
                        tick = time.perf_counter()
                        run()
                        timed.append((time.perf_counter() - tick) * 1e3)
        row = {"length": length, "status": "ok", "repeats": len(times["ours"][0])}
        for contender, (forward, forward_backward) in times.items():
            row[contender] = {
                "forward_ms": round(float(np.median(forward)), 3),
                "forward_backward_ms": round(float(np.median(forward_backward)), 3),
            }
        rows.append(row)
        runs = None
        gc.collect()
        if first > time_budget_s:
            stop = "over_budget"
    out["rows"] = rows
    return out


def _paired_index(results: list[dict]) -> dict:
    """`{backend: {contender: {length: row}}}` from the paired results, in the per-contender
    rows' shape."""
    index: dict = {}
    for result in results:
        for row in result.get("rows", []):
            if row.get("status") != "ok":
                continue
            for contender in PAIRED:
                index.setdefault(result["backend"], {}).setdefault(contender, {})[row["length"]] = {
                    "status": "ok",
                    **row[contender],
                }
    return index


def _targets(results: list[dict], paired: list[dict] = ()) -> dict:
    """The issue's CPU targets, as measured ratios per backend.

    Ours against the hand-written function and against the floor compare contenders at one
    length: they come from the paired rows where a backend has them (`"source": "paired"`).
    Ours' growth from 4,096 to 16,384 tokens and attention over ours come from the
    per-contender rows: the growth is one contender's, measured alone in its process (the
    paired process holds three contenders' buffers at once), and attention is not paired.
    """
    table: dict = {}
    paired_by = _paired_index(paired)
    for backend in sorted({r["backend"] for r in results} | set(paired_by)):
        alone = {
            r["contender"]: {row["length"]: row for row in r["rows"]}
            for r in results
            if r["backend"] == backend
        }
        by = {**alone, **paired_by.get(backend, {})}

        def t(contender, length, key="forward_backward_ms", by=by):
            row = by.get(contender, {}).get(length, {})
            return row.get(key) if row.get("status") == "ok" else None

        a = functools.partial(t, by=alone)  # forward+backward, per-contender rows

        lengths = sorted(by.get("ours", {}))
        out = {}
        ratios = [
            t("ours", n) / t("handwritten", n)
            for n in lengths
            if t("ours", n) and t("handwritten", n)
        ]
        out["ours_over_handwritten_fwd_bwd_max"] = round(max(ratios), 2) if ratios else None
        floor = [
            t("ours", n, "forward_ms") / t("fft_floor", n, "forward_ms")
            for n in lengths
            if n >= 4096 and t("ours", n, "forward_ms") and t("fft_floor", n, "forward_ms")
        ]
        out["ours_over_floor_fwd_max_at_4096_up"] = round(max(floor), 2) if floor else None
        out["source"] = "paired" if backend in paired_by else "per-contender workers"
        if backend in paired_by and t("ours", 16384) and t("ours", 4096):  # for comparison
            out["ours_16384_over_4096_fwd_bwd_paired"] = round(
                t("ours", 16384) / t("ours", 4096), 2
            )
        for contender in ("ours", "fft_floor"):  # the floor's growth: what the FFT itself does
            if a(contender, 16384) and a(contender, 4096):
                growth = a(contender, 16384) / a(contender, 4096)
                out[f"{contender}_16384_over_4096_fwd_bwd"] = round(growth, 2)
        if a("attention", 4096) and a("ours", 4096):
            out["attention_over_ours_at_4096"] = round(a("attention", 4096) / a("ours", 4096), 1)
        for n in sorted(alone.get("ours", {})):
            if a("fused_attention", n) and a("ours", n):
                out[f"fused_attention_over_ours_at_{n}"] = round(
                    a("fused_attention", n) / a("ours", n), 2
                )
        table[backend] = out
    return table


def _payload(args, results: list[dict], skipped: dict, complete: bool) -> dict:
    paired = [r for r in results if r.get("kind") == "paired"]
    per_contender = [r for r in results if r.get("kind") != "paired"]
    return {
        "machine": harness.machine(),
        "config": {
            "batch": BATCH,
            "channels": CHANNELS,
            "heads": HEADS,
            "lengths": sorted(args.lengths),
            "policy": args.policy,
            "repeats": args.repeats,
            "time_budget_s": args.time_budget,
            "memory_budget_gb": args.memory_budget,
            "expect_gpu": args.expect_gpu,
            "torch_compile": args.torch_compile,
            "paired_repeats": args.paired_repeats,
            "paired_lengths": _paired_lengths(args),
        },
        "complete": complete,
        "skipped": skipped,
        "results": per_contender,
        "paired": paired,
        "targets": _targets(
            [r for r in per_contender if "rows" in r], [r for r in paired if "rows" in r]
        ),
    }


def _paired_lengths(args) -> list[int]:
    if args.paired_lengths:
        return sorted(args.paired_lengths)
    return sorted(n for n in args.lengths if n <= 16384)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=harness.BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--lengths", type=int, nargs="+", default=DEFAULT_LENGTHS)
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CPU_CONTENDERS))
    parser.add_argument("--backends", nargs="+", choices=harness.BACKENDS, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--time-budget", type=float, default=15.0, help="seconds one forward+backward call may take"
    )
    parser.add_argument(
        "--memory-budget", type=float, default=14.0, help="GB 3 attention-score tensors may take"
    )
    parser.add_argument(
        "--policy", default="float32", help="Keras dtype policy of the Keras-layer contenders"
    )
    parser.add_argument(
        "--expect-gpu",
        action="store_true",
        help="a framework that computes on the CPU fails its workers instead of timing the CPU",
    )
    parser.add_argument(
        "--worker-timeout", type=float, default=3600, help="seconds one worker process may take"
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="worker processes at a time (GPU runs: they import and compile side by side and "
        "take turns to time, see harness.timing_lock); keep 1 on a CPU, where they would share "
        "the cores they time",
    )
    parser.add_argument(
        "--torch-compile",
        action="store_true",
        help="torch: run ours, hand-written and the floor through torch.compile",
    )
    parser.add_argument(
        "--paired-repeats",
        type=int,
        default=7,
        help="rounds of the paired worker (ours, hand-written and the floor timed in turn in one "
        "process, which the targets read); 0: none",
    )
    parser.add_argument(
        "--paired-lengths",
        type=int,
        nargs="+",
        default=None,
        help="lengths of the paired worker (default: those of --lengths up to 16,384)",
    )
    parser.add_argument("--paired", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "layers-cpu.json"))
    return parser


def _worker(args) -> dict:
    """One worker process's measurement: the paired worker or one contender."""
    if args.paired:
        return _measure_paired(
            args.worker,
            sorted(args.lengths),
            args.repeats,
            args.time_budget,
            args.policy,
            args.torch_compile,
        )
    return _measure(
        args.worker,
        args.contender,
        sorted(args.lengths),
        args.repeats,
        args.time_budget,
        args.memory_budget,
        args.policy,
        args.expect_gpu,
        args.torch_compile,
    )


def _contender_args(args, contender: str) -> list[str]:
    worker_args = ["--contender", contender, "--repeats", str(args.repeats)]
    worker_args += ["--time-budget", str(args.time_budget)]
    worker_args += ["--memory-budget", str(args.memory_budget), "--policy", args.policy]
    worker_args += ["--lengths", *map(str, args.lengths)]
    if args.expect_gpu:
        worker_args.append("--expect-gpu")
    if args.torch_compile:
        worker_args.append("--torch-compile")
    return worker_args


def _paired_args(args) -> list[str]:
    worker_args = ["--paired", "--repeats", str(args.paired_repeats)]
    worker_args += ["--time-budget", str(args.time_budget), "--policy", args.policy]
    worker_args += ["--lengths", *map(str, _paired_lengths(args))]
    if args.torch_compile:
        worker_args.append("--torch-compile")
    return worker_args


def _jobs(args, backends: list[str], skipped: dict) -> tuple[list, list[str]]:
    """`(jobs, labels)`: one `(backend, worker arguments)` job per backend and contender, plus
    the paired worker where the three paired contenders are asked for. Records in `skipped`
    the contenders a backend has none of."""
    jobs, labels = [], []
    for backend in backends:
        for contender in args.contenders:
            if contender == "fused_attention" and backend == "tensorflow":
                skipped[f"{backend}/{contender}"] = "no fused-attention contender for tensorflow"
                continue
            jobs.append((backend, _contender_args(args, contender)))
            labels.append(contender)
        if args.paired_repeats > 0 and set(PAIRED) <= set(args.contenders):
            jobs.append((backend, _paired_args(args)))
            labels.append("paired")
    return jobs, labels


def _run_all(args) -> dict:
    """Runs every job, writing the results after each worker (a run cut short keeps what it
    measured); returns the final payload."""
    wanted = args.backends or list(harness.BACKENDS)
    skipped = harness.skipped_backends(wanted)
    jobs, labels = _jobs(args, [b for b in wanted if b not in skipped], skipped)
    finished: dict[int, dict] = {}

    def record(index: int, result) -> None:
        backend, contender = jobs[index][0], labels[index]
        stamp = time.strftime("%H:%M:%S")
        print(f"{stamp} {backend} {contender} done", file=sys.stderr, flush=True)
        if isinstance(result, Exception):  # recorded; the other workers still run
            print(str(result)[-2000:], file=sys.stderr, flush=True)
            which = {"kind": "paired"} if contender == "paired" else {"contender": contender}
            result = {"backend": backend, **which, "error": str(result)[-2000:]}
        finished[index] = result
        partial = [finished[i] for i in sorted(finished)]
        harness.write_json(args.out, _payload(args, partial, skipped, complete=False))

    harness.run_workers(__file__, jobs, args.worker_timeout, args.parallel, on_done=record)
    results = [finished[i] for i in sorted(finished)]
    payload = _payload(args, results, skipped, complete=True)
    harness.write_json(args.out, payload)
    return payload


def main() -> None:
    args = _parser().parse_args()
    if args.worker:
        print(json.dumps(_worker(args)))
        return
    print(json.dumps(_run_all(args)["targets"], indent=2))


if __name__ == "__main__":
    main()
