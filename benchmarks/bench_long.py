"""A million tokens: time and peak memory of one block at 64K, 256K and 1M tokens, per backend.

One **process per point** (a point: backend, kind, mixer, length, devices), so that each
point's peak memory is its own. Width 64, 4 heads, batch 1, float32; the filters are defined
on `max_sequence_length=4096` tokens (`FILTER_LENGTH`) and resampled, so their parameters
stay bounded. Kinds of point:

- `block`: forward+backward of one `FFTNetBlock(num_heads=4, token_mixer=m,
  max_sequence_length=4096)` for each registered token mixer (a mixer that arranges the tokens
  on a 2-D grid, `gfnet_2d`, is recorded as skipped), attention where its scores fit;
- `floor`: bare `rfft` + `irfft` along the tokens of `(1, N, 64)` (forward, forward+backward);
- `ratio`: the FFTNet mixer's forward (`AdaptiveSpectralFilter` alone) and the floor's
  forward timed in turn in one process (rotating which goes first each round), at every length
  from 4,096 up: the mixer-over-floor ratio;
- `train`: one training step (forward+backward+update, `train_on_batch`, Adam) of a 4-block
  `FFTNetClassifier` whose backbone is built for the length it trains at (`remat=True` where
  the backbone takes it), and its parameter count;
- `params`: the parameters of the same 4-block model built for 4,096 tokens and for each
  length (nothing run);
- `sp` (JAX): one device against 8 simulated devices (`XLA_FLAGS=
  --xla_force_host_platform_device_count=8` in the worker's environment) through
  `spectralmix.sequence_parallel`; recorded as skipped until that module exists.

Compiled as Keras runs each backend: `jax.jit` (ahead of time: compilation outside the
timing), `tf.function`, eager torch (Keras's torch trainer runs eagerly unless
`jit_compile=True`). Times are medians of `--repeats` calls after one warm-up call (1 call
when the warm-up took longer than `LONG_CALL_S`).

Peak memory: right before a timed call the worker resets the kernel's high-water mark
(`/proc/self/clear_refs` ← `5`), reads `VmRSS`, runs the call and reads `VmHWM`; the increase
(the largest over the timed calls) is reported in MB and as copies of the input
(`N·64·4` bytes). On JAX the compiled executable's `memory_analysis()` is recorded too; it is
per device, which is what the 8 simulated devices (one process, one RSS) are compared by.

A memory guard refuses a point whose estimate exceeds the memory available now
(`refused_memory`, tried again on the next run) or the machine's memory (`did_not_fit`). The
estimate scales the same backend and mixer's measured peak at a shorter length linearly,
or else uses `ESTIMATED_COPIES`; attention's is its three `heads·N²` float32 score tensors.

The run is resumable: points already in `--out` with a final status (`ok`, `did_not_fit`,
`skipped_grid`, `timeout`) are not run again unless `--force`; the JSON is rewritten after
every point. `--report` prints the tables of `docs/benchmarks.md` from the JSON and draws
`docs/img/long-cpu-{time,memory}.png`; `--comm-table` prints what each all-to-all of context
parallelism moves (`docs/distribution.md`).

    python benchmarks/bench_long.py [--backends jax torch] [--mixers fftnet fnet]
        [--lengths 65536 262144 1048576] [--kinds block floor ratio sp train params]
        [--quick] [--force] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOCS_IMG = os.path.join(ROOT, "docs", "img")
DEFAULT_OUT = os.path.join(HERE, "results", "long-cpu.json")

BATCH, CHANNELS, HEADS = 1, 64, 4
FILTER_LENGTH = 4096  # max_sequence_length of every block's filter
TRAIN_LAYERS, VOCABULARY = 4, 256
DEFAULT_LENGTHS = [65536, 262144, 1048576]
RATIO_FROM = 4096  # the ratio points run at 4,096, 16,384, ... up to the longest length
QUICK_LENGTHS = [1024]
KINDS = ("block", "floor", "ratio", "sp", "train", "params")
SP_DEVICES = 8
SP_HEADS = 8  # the sp points' blocks: the FFTNet filter shards by head
SP_MISSING = "spectralmix.sequence_parallel does not exist yet: the 8-device point is skipped"
#: A warm-up call longer than this: one timed call instead of `--repeats`.
LONG_CALL_S = 30.0
#: Statuses a rerun keeps; the others (`error`, `refused_memory`, `skipped`) are tried again.
FINAL = ("ok", "did_not_fit", "skipped_grid", "timeout")
#: Peak memory of a point in copies of its input (N·64·4 bytes) where nothing shorter was
#: measured on the same backend: generous (the issue measured ~50 for an FFTNet block).
# "train" (4 blocks, remat on): measured at 1M tokens, 63 copies of one block's input on JAX
# before the spectral core's leaner backward (15.8 GiB peak RSS) and 27 on torch (6.8 GiB).
ESTIMATED_COPIES = {"block": 80, "floor": 12, "ratio": 30, "sp": 100, "train": 64, "params": 0}
#: Fixed cost of a worker (framework, runtime, compiled code), bytes.
WORKER_BYTES = 1.5e9
#: Interconnects of the all-to-all table: name -> bytes per second, per direction per device.
INTERCONNECTS = {
    "NVLink 4 (H100 SXM, 450 GB/s per direction)": 450e9,
    "100 Gb/s Ethernet (12.5 GB/s)": 12.5e9,
}


# --------------------------------------------------------------------------------- points


def point_id(point: dict) -> str:
    parts = [str(point[k]) for k in ("backend", "kind", "mixer", "length", "devices") if k in point]
    if point.get("remat"):
        parts.append(f"remat={point['remat']}")
    return "/".join(parts)


def input_bytes(length: int, channels: int = CHANNELS) -> int:
    return BATCH * length * channels * 4


def _ratio_lengths(lengths: list[int], quick: bool) -> list[int]:
    longest = max(lengths)
    if quick:
        return sorted(lengths)
    out, n = [], RATIO_FROM
    while n <= longest:
        out.append(n)
        n *= 4
    return sorted(set(out) | {n for n in lengths if n >= RATIO_FROM})


def plan(args) -> list[dict]:
    """Every point the arguments ask for, shortest length first (so that a longer point's
    memory estimate can scale a measured shorter one)."""
    points = []
    lengths = sorted(args.lengths)
    spectral = [m for m in args.mixers if m != "attention"]
    for length in sorted(set(lengths) | set(_ratio_lengths(lengths, args.quick))):
        for backend in args.backends:
            if "floor" in args.kinds and length in lengths:
                points.append({"backend": backend, "kind": "floor", "mixer": "-", "length": length})
            wanted = "ratio" in args.kinds and "fftnet" in args.mixers
            if wanted and length in _ratio_lengths(lengths, args.quick):
                points.append(
                    {"backend": backend, "kind": "ratio", "mixer": "fftnet", "length": length}
                )
            if length not in lengths:
                continue
            if "block" in args.kinds:
                for mixer in args.mixers:
                    p = {"backend": backend, "kind": "block", "mixer": mixer, "length": length}
                    points.append({**p, "remat": args.remat} if args.remat else p)
            if "sp" in args.kinds and backend == "jax":
                for mixer in spectral:
                    if mixer in args.sp_mixers:
                        for devices in (1, SP_DEVICES):
                            p = {"backend": backend, "kind": "sp", "mixer": mixer}
                            points.append({**p, "length": length, "devices": devices})
            if "train" in args.kinds and backend in args.train_backends:
                points.append(
                    {"backend": backend, "kind": "train", "mixer": "fftnet", "length": length}
                )
    if "params" in args.kinds:
        points.append(
            {
                "backend": args.backends[0],
                "kind": "params",
                "mixer": "fftnet",
                "length": max(lengths),
            }
        )
    return points


# ---------------------------------------------------------------------------- memory guard


def meminfo() -> dict:
    """`MemTotal` and `MemAvailable` in bytes (Linux); empty elsewhere."""
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, value = line.split(":", 1)
                if key in ("MemTotal", "MemAvailable"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def attention_score_bytes(length: int) -> int:
    """Three `(batch, heads, N, N)` float32 tensors: scores, probabilities, their gradient."""
    return 3 * BATCH * HEADS * length * length * 4


def estimate_bytes(point: dict, measured: dict) -> float:
    """What the point will need at its peak: a measured shorter point of the same backend,
    kind and mixer scaled linearly in the length (x1.2), else `ESTIMATED_COPIES`; attention
    adds its scores. `measured` maps point ids to rows."""
    kind, length = point["kind"], point["length"]
    if kind == "params":  # the modulation MLPs at the default filter length, built twice
        return WORKER_BYTES + 3 * TRAIN_LAYERS * CHANNELS * HEADS * (length // 2 + 1) * 4
    best = None
    for row in measured.values():
        keys = ("backend", "kind", "mixer", "devices", "remat")
        same = all(row.get(k) == point.get(k) for k in keys)
        near = length / 16 <= row["length"] < length  # fixed costs swamp tiny lengths
        if same and row.get("status") == "ok" and near and "peak_increase_mb" in row:
            grown = row.get("peak_increase_mb", 0) * 2**20 * length / row["length"] * 1.2
            if best is None or row["length"] > best[0]:
                best = (row["length"], grown)
    body = best[1] if best else ESTIMATED_COPIES[kind] * input_bytes(length)
    if point["mixer"] == "attention":
        body += attention_score_bytes(length) * (TRAIN_LAYERS if kind == "train" else 1)
    return WORKER_BYTES + body


def guard(point: dict, measured: dict, memory: dict) -> dict | None:
    """A row refusing the point, or None where it may run."""
    need = estimate_bytes(point, measured)
    total, available = memory.get("MemTotal"), memory.get("MemAvailable")
    if total is not None and need > total:
        status = "did_not_fit"
    elif available is not None and need > 0.9 * available:
        status = "refused_memory"
    else:
        return None
    return {
        "status": status,
        "estimate_gb": round(need / 1e9, 2),
        "machine_gb": round(total / 1e9, 2) if total else None,
        "available_gb": round(available / 1e9, 2) if available else None,
    }


# --------------------------------------------------------------------------- peak memory


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def measured_call(fn) -> tuple[float, float | None]:
    """`(seconds, peak increase in bytes)` of one call of `fn`: the high-water mark is reset
    right before it (`/proc/self/clear_refs`), and the peak is `VmHWM` after it less `VmRSS`
    before it. The increase is None where the kernel does not offer this."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kb("VmRSS")
    except OSError:
        before = None
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    after = _status_kb("VmHWM")
    if before is None or after is None:
        return seconds, None
    return seconds, (after - before) * 1024.0


def timed(fn, repeats: int) -> dict:
    """One warm-up call, then `repeats` measured calls (1 where the warm-up took longer than
    `LONG_CALL_S`): the median time and the largest peak increase; also the largest peak over
    the RSS before the warm-up (`peak_over_start_bytes`: counts buffers a runtime keeps
    resident after the warm-up and reuses, which the increase over the step's own start
    misses)."""
    at_start = _status_kb("VmRSS")
    start = time.perf_counter()
    fn()
    warmup = time.perf_counter() - start
    n = repeats if warmup < LONG_CALL_S else 1
    times, peaks = [], []
    for _ in range(n):
        seconds, peak = measured_call(fn)
        times.append(seconds)
        if peak is not None:
            peaks.append(peak)
    out = {"seconds": float(np.median(times)), "repeats": n, "warmup_s": round(warmup, 3)}
    out["times_s"] = [round(t, 4) for t in times]
    if peaks:
        out["peak_increase_bytes"] = max(peaks)
        high = _status_kb("VmHWM")  # the last call's high-water mark
        if at_start is not None and high is not None:
            out["peak_over_start_mb"] = round((high - at_start) / 1024, 1)
    return out


# ------------------------------------------------------------------------------- workers


def _xla_memory(compiled) -> dict:
    stats = compiled.memory_analysis()
    return {
        "xla_temp_mb": round(stats.temp_size_in_bytes / 2**20, 1),
        "xla_argument_mb": round(stats.argument_size_in_bytes / 2**20, 1),
        "xla_output_mb": round(stats.output_size_in_bytes / 2**20, 1),
        "xla_peak_mb": round(
            (
                stats.temp_size_in_bytes
                + stats.argument_size_in_bytes
                + stats.output_size_in_bytes
                - stats.alias_size_in_bytes
            )
            / 2**20,
            1,
        ),
    }


def _floor_fn(backend: str):
    """Bare rfft + irfft along the tokens (axis 1), float32."""
    import bench_layers

    return bench_layers._framework(backend).fft_pair


def _layer(kind: str, mixer: str, length: int, heads: int = HEADS, **block):
    from spectralmix.layers import AdaptiveSpectralFilter, FFTNetBlock

    if kind == "mixer":
        layer = AdaptiveSpectralFilter(heads, max_sequence_length=FILTER_LENGTH)
    else:
        layer = FFTNetBlock(
            num_heads=heads, token_mixer=mixer, max_sequence_length=FILTER_LENGTH, **block
        )
    layer.build((BATCH, length, CHANNELS))
    return layer


def _runners(backend: str, fn_of, variables, x: np.ndarray, forward_only: bool = False):
    """`(forward, forward_backward, extra)` calls of `fn_of(params, x)`, compiled as Keras runs
    the backend; each blocks until its result is ready. `variables` are Keras variables (or
    raw arrays for the floor: `None`)."""
    extra: dict = {}
    if backend == "jax":
        import jax

        values = [v.value for v in variables] if variables else []
        xs = jax.numpy.asarray(x)
        fwd = jax.jit(fn_of).lower(values, xs).compile()
        forward = lambda: fwd(values, xs).block_until_ready()  # noqa: E731
        if forward_only:
            return forward, None, extra
        grad = (
            jax.jit(jax.grad(lambda p, xx: fn_of(p, xx).sum(), argnums=(0, 1)))
            .lower(values, xs)
            .compile()
        )
        extra.update(_xla_memory(grad))
        return forward, lambda: jax.block_until_ready(grad(values, xs)), extra
    if backend == "tensorflow":
        import tensorflow as tf

        variables = list(variables or [])
        xs = tf.constant(x)
        fwd = tf.function(lambda xx: fn_of(variables, xx))

        @tf.function
        def grad(xx):
            with tf.GradientTape() as tape:
                tape.watch(xx)
                loss = tf.reduce_sum(fn_of(variables, xx))
            return tape.gradient(loss, [xx, *variables])

        return (lambda: fwd(xs).numpy(), lambda: [g.numpy() for g in grad(xs)], extra)
    import torch

    tensors = [v.value for v in variables] if variables else []
    xs = torch.tensor(x, requires_grad=True)

    def forward():
        with torch.no_grad():
            fn_of(tensors, xs)

    def forward_backward():
        fn_of(tensors, xs).sum().backward()
        for t in (xs, *tensors):
            t.grad = None

    return forward, forward_backward, extra


def _layer_fn(backend: str, layer):
    if backend == "jax":
        non_trainable = [v.value for v in layer.non_trainable_variables]
        return lambda p, xx: layer.stateless_call(p, non_trainable, xx)[0]
    return lambda p, xx: layer(xx)


def _memory_fields(result: dict, length: int) -> dict:
    out = {}
    if "peak_increase_bytes" in result:
        peak = result.pop("peak_increase_bytes")
        out["peak_increase_mb"] = round(peak / 2**20, 1)
        out["peak_copies_of_input"] = round(peak / input_bytes(length), 2)
    return out


def work_block(point: dict, repeats: int) -> dict:
    from spectralmix.registry import get_token_mixer

    backend, mixer, length = point["backend"], point["mixer"], point["length"]
    if getattr(get_token_mixer(mixer), "token_grid", False):
        return {
            "status": "skipped_grid",
            "note": f"{mixer} arranges the tokens on a square 2-D grid; a sequence of "
            f"{length} tokens is not one (run it in FFTNetViTBackbone)",
        }
    x = np.random.default_rng(0).standard_normal((BATCH, length, CHANNELS)).astype("float32")
    block = {"remat": point["remat"]} if point.get("remat") else {}
    layer = _layer("block", mixer, length, **block)
    _, forward_backward, extra = _runners(
        backend, _layer_fn(backend, layer), layer.trainable_variables, x
    )
    result = timed(forward_backward, repeats)
    row = {"status": "ok", "forward_backward_s": round(result.pop("seconds"), 4), **result}
    row.update(_memory_fields(row, length))
    row["parameters"] = int(layer.count_params())
    return {**row, **extra}


def work_floor(point: dict, repeats: int) -> dict:
    backend, length = point["backend"], point["length"]
    x = np.random.default_rng(0).standard_normal((BATCH, length, CHANNELS)).astype("float32")
    pair = _floor_fn(backend)
    forward, forward_backward, extra = _runners(backend, lambda p, xx: pair(xx), None, x)
    fwd = timed(forward, repeats)
    result = timed(forward_backward, repeats)
    row = {
        "status": "ok",
        "forward_s": round(fwd["seconds"], 4),
        "forward_backward_s": round(result.pop("seconds"), 4),
        **result,
    }
    row.update(_memory_fields(row, length))
    return {**row, **extra}


def work_ratio(point: dict, repeats: int) -> dict:
    """The FFTNet mixer's forward and the floor's forward in turn, call by call, rotating
    which goes first: drifts in the machine's speed reach both alike."""
    backend, length = point["backend"], point["length"]
    x = np.random.default_rng(0).standard_normal((BATCH, length, CHANNELS)).astype("float32")
    layer = _layer("mixer", "fftnet", length)
    pair = _floor_fn(backend)
    runs = {
        "mixer": _runners(
            backend, _layer_fn(backend, layer), layer.trainable_variables, x, forward_only=True
        )[0],
        "floor": _runners(backend, lambda p, xx: pair(xx), None, x, forward_only=True)[0],
    }
    start = time.perf_counter()
    for run in runs.values():
        run()
    warmup = time.perf_counter() - start
    rounds = max(repeats, 3) if warmup < LONG_CALL_S else 2
    times: dict = {name: [] for name in runs}
    order = list(runs)
    for r in range(rounds):
        for name in order[r % 2 :] + order[: r % 2]:
            tick = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - tick)
    mixer, floor = (float(np.median(times[k])) for k in ("mixer", "floor"))
    return {
        "status": "ok",
        "mixer_forward_s": round(mixer, 6),
        "floor_forward_s": round(floor, 6),
        "mixer_over_floor": round(mixer / floor, 3),
        "rounds": rounds,
    }


def _backbone(length: int, **extra):
    import inspect

    from spectralmix.models import FFTNetBackbone

    kwargs = {
        "vocabulary_size": VOCABULARY,
        "max_sequence_length": length,
        "hidden_dim": CHANNELS,
        "num_layers": TRAIN_LAYERS,
        "num_heads": HEADS,
        **extra,
    }
    if "remat" in extra and "remat" not in inspect.signature(FFTNetBackbone.__init__).parameters:
        kwargs.pop("remat")
    return FFTNetBackbone(**kwargs), kwargs.get("remat", False)


def work_train(point: dict, repeats: int) -> dict:
    import keras

    from spectralmix.models import FFTNetClassifier

    length = point["length"]
    backbone, remat = _backbone(length, remat=True)
    model = FFTNetClassifier(backbone=backbone, num_classes=2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, VOCABULARY, (BATCH, length)).astype("int32")
    labels = np.zeros((BATCH,), "int32")
    result = timed(lambda: model.train_on_batch(tokens, labels), repeats)
    row = {"status": "ok", "train_step_s": round(result.pop("seconds"), 4), **result}
    row.update(_memory_fields(row, length))
    row["parameters"] = int(model.count_params())
    row["remat"] = bool(remat)
    row["keras"] = keras.__version__
    return row


def work_params(point: dict, repeats: int) -> dict:
    counts = {}
    for length in sorted({FILTER_LENGTH, point["length"]}):
        backbone, _ = _backbone(length)
        counts[str(length)] = int(backbone.count_params())
        del backbone
    first, last = counts[str(FILTER_LENGTH)], counts[str(point["length"])]
    return {"status": "ok", "parameters": counts, "growth": round(last / first, 2)}


def _sequence_parallel():
    """`(SequenceParallel, None)` from `spectralmix.sequence_parallel`, or `(None, reason)`."""
    if importlib.util.find_spec("spectralmix.sequence_parallel") is None:
        return None, SP_MISSING
    try:
        from spectralmix.sequence_parallel import SequenceParallel
    except ImportError as error:
        return None, f"spectralmix.sequence_parallel has no SequenceParallel: {error}"
    return SequenceParallel, None


def work_sp(point: dict, repeats: int) -> dict:
    """The block's forward+backward with its tokens sharded over `devices` simulated CPU
    devices: built, traced and compiled inside the `SequenceParallel` distribution's scope,
    the input laid out along the tokens; `devices=1`: the same block without a distribution.
    `SP_HEADS` heads (the FFTNet filter shards by head: 8 devices need 8 heads)."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    mixer, length, devices = (point[k] for k in ("mixer", "length", "devices"))
    x = np.random.default_rng(0).standard_normal((BATCH, length, CHANNELS)).astype("float32")
    if devices == 1:
        layer = _layer("block", mixer, length, SP_HEADS)
        fn, xs, scope = _layer_fn("jax", layer), x, contextlib.nullcontext
    else:
        SequenceParallel, reason = _sequence_parallel()
        if SequenceParallel is None:
            return {"status": "skipped", "note": reason}
        if len(jax.devices()) < devices:
            return {"status": "error", "error": f"{len(jax.devices())} devices, not {devices}"}
        import keras

        distribution = SequenceParallel(keras.distribution.list_devices()[:devices])
        scope = distribution.scope
        with scope():
            layer = _layer("block", mixer, length, SP_HEADS)
        mesh = distribution.device_mesh.backend_mesh
        spec = PartitionSpec(None, distribution.sequence_axis, None)
        xs = jax.device_put(x, NamedSharding(mesh, spec))
        fn = _layer_fn("jax", layer)
    with scope():  # traced and compiled inside it: the mixers run sharded
        _, forward_backward, extra = _runners("jax", fn, layer.trainable_variables, xs)
        result = timed(forward_backward, repeats)
    row = {"status": "ok", "forward_backward_s": round(result.pop("seconds"), 4), **result}
    row.update(_memory_fields(row, length))
    row["heads"] = SP_HEADS
    row["note"] = (
        "xla_* are per device (one SPMD program); the RSS figures are the one process's, "
        "all simulated devices together"
    )
    return {**row, **extra}


WORKERS = {
    "block": work_block,
    "floor": work_floor,
    "ratio": work_ratio,
    "train": work_train,
    "params": work_params,
    "sp": work_sp,
}


def worker(point: dict, repeats: int) -> dict:
    import keras

    out = dict(point)
    out["versions"] = harness.versions(point["backend"])
    out["keras_backend"] = keras.config.backend()
    try:
        out.update(WORKERS[point["kind"]](point, repeats))
    except Exception as error:  # recorded (out of memory, say), not fatal
        out.update({"status": "error", "error": f"{type(error).__name__}: {str(error)[:800]}"})
    return out


def run_point(point: dict, repeats: int, timeout: float) -> dict:
    env = {**os.environ, "KERAS_BACKEND": point["backend"]}
    if point["kind"] == "sp" and point.get("devices", 1) > 1:
        flags = env.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={point['devices']}"
    command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(point)]
    command += ["--repeats", str(repeats)]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**point, "status": "timeout", "timeout_s": timeout}
    wall = round(time.perf_counter() - start, 1)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        # Killed (out of memory: -9) or crashed before writing its row.
        return {
            **point,
            "status": "error",
            "returncode": result.returncode,
            "error": result.stderr[-1500:],
            "wall_s": wall,
        }
    return {**json.loads(lines[-1]), "wall_s": wall}


# --------------------------------------------------------------------------------- summary


def _rows(points: dict, **match) -> list[dict]:
    return sorted(
        (
            r
            for r in points.values()
            if r.get("status") == "ok" and all(r.get(k) == v for k, v in match.items())
        ),
        key=lambda r: r["length"],
    )


def summarise(points: dict) -> dict:
    """The issue's targets as measured figures, per backend, from the point rows."""
    out: dict = {}
    for backend in sorted({r["backend"] for r in points.values()}):
        s: dict = {}
        ratios = {
            r["length"]: r["mixer_over_floor"] for r in _rows(points, backend=backend, kind="ratio")
        }
        if ratios:
            s["mixer_over_floor_forward"] = ratios
            s["mixer_over_floor_forward_max"] = max(ratios.values())
        block = {
            r["length"]: r
            for r in _rows(points, backend=backend, kind="block", mixer="fftnet", remat=None)
        }
        for r in _rows(points, backend=backend, kind="block", mixer="fftnet"):
            if r.get("remat") and "peak_copies_of_input" in r:
                s.setdefault("fftnet_block_copies_remat", {})[r["length"]] = {
                    "remat": r["remat"],
                    "copies": r["peak_copies_of_input"],
                    "forward_backward_s": r["forward_backward_s"],
                }
        floor = {r["length"]: r for r in _rows(points, backend=backend, kind="floor")}
        lengths = sorted(set(block) & set(floor))
        if len(lengths) >= 2:
            lo, hi = lengths[0], lengths[-1]
            block_growth = block[hi]["forward_backward_s"] / block[lo]["forward_backward_s"]
            floor_growth = floor[hi]["forward_backward_s"] / floor[lo]["forward_backward_s"]
            floor_fwd_growth = floor[hi]["forward_s"] / floor[lo]["forward_s"]
            s["growth"] = {
                "from": lo,
                "to": hi,
                "block_fwd_bwd": round(block_growth, 2),
                "floor_fwd_bwd": round(floor_growth, 2),
                "floor_fwd": round(floor_fwd_growth, 2),
                "block_over_floor_fwd_bwd": round(block_growth / floor_growth, 2),
                "block_over_floor_fwd": round(block_growth / floor_fwd_growth, 2),
            }
        if block:
            longest = max(block)
            if "peak_copies_of_input" in block[longest]:
                s["fftnet_block_copies"] = {"length": longest}
                s["fftnet_block_copies"]["copies"] = block[longest]["peak_copies_of_input"]
                if block[longest].get("peak_over_start_mb") is not None:
                    over = block[longest]["peak_over_start_mb"] * 2**20 / input_bytes(longest)
                    s["fftnet_block_copies"]["copies_over_warmup_start"] = round(over, 2)
        sp = {(r["length"], r["devices"]): r for r in _rows(points, backend=backend, kind="sp")}
        for (length, devices), row in sorted(sp.items()):
            one = sp.get((length, 1))
            if devices > 1 and one and "xla_peak_mb" in row and "xla_peak_mb" in one:
                s.setdefault("sp", {}).setdefault(row["mixer"], {})[length] = {
                    "devices": row["devices"],
                    "per_device_memory_over_one": round(row["xla_peak_mb"] / one["xla_peak_mb"], 3),
                    "time_over_one": round(
                        row["forward_backward_s"] / one["forward_backward_s"], 2
                    ),
                }
        train = _rows(points, backend=backend, kind="train")
        if train:
            s["train"] = {
                r["length"]: {
                    k: r.get(k) for k in ("train_step_s", "peak_increase_mb", "remat", "parameters")
                }
                for r in train
            }
        params = _rows(points, backend=backend, kind="params")
        if params:
            s["parameters"] = params[-1]["parameters"]
            s["parameter_growth"] = params[-1]["growth"]
        out[backend] = s
    return out


# -------------------------------------------------------------------------- all-to-all table


def all_to_all_bytes(mixer: str, length: int, width: int, devices: int, batch: int = 1) -> dict:
    """Bytes one device sends in the all-to-alls of one layer of `mixer` under context
    parallelism over `devices`, forward and forward+backward.

    Each all-to-all turns a device's `(batch, N/P, C)` token shard into a `(batch, N, C/P)`
    channel shard (or back); a device keeps `1/P` of its shard and sends the other
    `(P-1)/P`. Per layer, forward (the backward runs the transposed all-to-alls, the same
    bytes again):

    - `fftnet`, `gfnet`: `D` float32 channels there, `D` back (the filter runs per channel; the
      adaptive filter's context mean is an all-reduce of `D` floats per example, not counted);
    - `hyena`: the in-projection's `3·D` float32 channels there (value and two gates: the
      gated long convolutions run per channel), `D` back;
    - `fnet`: the channel FFT runs on the token shard, so `D` complex64 channels go there (8
      bytes each) and the real part of the token FFT, `D` float32, comes back.
    """
    words_there, words_back = {
        "fftnet": (4 * width, 4 * width),
        "gfnet": (4 * width, 4 * width),
        "hyena": (4 * 3 * width, 4 * width),
        "fnet": (8 * width, 4 * width),
    }[mixer]
    tokens_per_device = batch * length / devices
    sent = (devices - 1) / devices
    forward = tokens_per_device * (words_there + words_back) * sent
    return {"forward": forward, "forward_backward": 2 * forward}


def comm_table(
    lengths=(2**20, 2**21, 2**22, 2**23, 2**24),
    width: int = 768,
    devices: int = 8,
    mixers=("fftnet", "gfnet", "hyena", "fnet"),
) -> str:
    """The markdown table of `docs/distribution.md`: per layer, what one device sends in the
    all-to-alls of forward+backward, and how long that takes at each interconnect's bandwidth
    (bandwidth alone: no latency, no overlap with compute)."""
    names = list(INTERCONNECTS)
    lines = [
        "| mixer | tokens | sent per device, fwd / fwd+bwd | "
        + " | ".join(f"fwd+bwd at {n}" for n in names)
        + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for mixer in mixers:
        for length in lengths:
            b = all_to_all_bytes(mixer, length, width, devices)
            cells = []
            for name in names:
                seconds = b["forward_backward"] / INTERCONNECTS[name]
                cells.append(f"{seconds * 1e3:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s")
            lines.append(
                f"| {mixer} | {length:,} ({length // 2**20}M) | "
                f"{b['forward'] / 1e9:.2f} / {b['forward_backward'] / 1e9:.2f} GB | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- report


def _fmt_s(seconds: float) -> str:
    return (
        f"{seconds:.3f}" if seconds < 1 else f"{seconds:.2f}" if seconds < 100 else f"{seconds:.0f}"
    )


def _cell(row: dict | None) -> str:
    if row is None:
        return "—"
    status = row.get("status")
    if status == "ok":
        memory = ""
        if row.get("peak_copies_of_input") is not None:
            memory = f" · {row['peak_copies_of_input']:.0f}"
            if row.get("peak_over_start_mb") is not None:
                mb = input_bytes(row["length"]) / 2**20
                memory += f" / {row['peak_over_start_mb'] / mb:.0f}"
        return f"{_fmt_s(row['forward_backward_s'])} s{memory}"
    if status in ("did_not_fit", "refused_memory"):
        return f"{status.replace('_', ' ')} (~{row['estimate_gb']:.0f} GB)"
    if status == "skipped_grid":
        return "needs a grid"
    return status or "—"


def block_table(points: dict) -> str:
    """Per backend and length: each block's forward+backward time and its peak memory in
    copies of the input, over the RSS at the timed step's start / at the warm-up's start; the
    floor's forward and forward+backward time."""
    backends = sorted({r["backend"] for r in points.values()})
    rows = [r for r in points.values() if r["kind"] == "block"]
    columns = list(dict.fromkeys((r["mixer"], r.get("remat")) for r in rows))
    labels = [m + (f" (remat={remat})" if remat else "") for m, remat in columns]
    lines = [
        "| backend | tokens | rfft+irfft fwd / fwd+bwd (s) | " + " | ".join(labels) + " |",
        "|---|---:|---:|" + "---|" * len(columns),
    ]
    for backend in backends:
        lengths = sorted({r["length"] for r in rows if r["backend"] == backend})
        for length in lengths:
            floor = points.get(
                point_id({"backend": backend, "kind": "floor", "mixer": "-", "length": length})
            )
            floor_cell = (
                f"{_fmt_s(floor['forward_s'])} / {_fmt_s(floor['forward_backward_s'])}"
                if floor and floor.get("status") == "ok"
                else _cell(floor)
            )
            cells = []
            for mixer, remat in columns:
                p = {"backend": backend, "kind": "block", "mixer": mixer, "length": length}
                cells.append(_cell(points.get(point_id({**p, "remat": remat}))))
            lines.append(f"| {backend} | {length:,} | {floor_cell} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_table(points: dict) -> str:
    rows = [r for r in points.values() if r["kind"] == "ratio" and r.get("status") == "ok"]
    backends = sorted({r["backend"] for r in rows})
    lengths = sorted({r["length"] for r in rows})
    lines = [
        "| tokens | " + " | ".join(f"{b}: mixer / rfft+irfft (s)" for b in backends) + " |",
        "|---:|" + "---:|" * len(backends),
    ]
    for length in lengths:
        cells = []
        for backend in backends:
            r = points.get(
                point_id({"backend": backend, "kind": "ratio", "mixer": "fftnet", "length": length})
            )
            if r and r.get("status") == "ok":
                cells.append(
                    f"{_fmt_s(r['mixer_forward_s'])} / {_fmt_s(r['floor_forward_s'])} = "
                    f"**{r['mixer_over_floor']:.2f}x**"
                )
            else:
                cells.append(_cell(r))
        lines.append(f"| {length:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sp_table(points: dict) -> str:
    """One device against several (JAX): time, XLA's per-device peak, and their ratios."""
    rows = [r for r in points.values() if r["kind"] == "sp"]
    lines = [
        "| mixer | tokens | devices | fwd+bwd (s) | XLA peak per device (MB) | vs one device |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: (r["mixer"], r["length"], r["devices"])):
        if r.get("status") != "ok":
            lines.append(f"| {r['mixer']} | {r['length']:,} | {r['devices']} | {_cell(r)} | | |")
            continue
        one = points.get(point_id({**r, "devices": 1}), {})
        versus = "—"
        if r["devices"] > 1 and one.get("status") == "ok":
            versus = (
                f"memory {r['xla_peak_mb'] / one['xla_peak_mb']:.3f}x, "
                f"time {r['forward_backward_s'] / one['forward_backward_s']:.2f}x"
            )
        lines.append(
            f"| {r['mixer']} | {r['length']:,} | {r['devices']} | "
            f"{_fmt_s(r['forward_backward_s'])} | {r['xla_peak_mb']:,.0f} | {versus} |"
        )
    return "\n".join(lines)


def plot(path: str, out_dir: str = DOCS_IMG) -> list[str]:
    """Log-log forward+backward time and peak memory (copies of the input) against length,
    one panel per backend, one line per block plus the floor (`docs/img/<stem>-*.png`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path) as f:
        payload = json.load(f)
    points = payload["points"]
    backends = sorted({r["backend"] for r in points.values() if r["kind"] in ("block", "floor")})
    stem = os.path.splitext(os.path.basename(path))[0]
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for key, ylabel, suffix in (
        ("forward_backward_s", "forward+backward time (s)", "time"),
        ("peak_copies_of_input", "peak memory increase (copies of the input)", "memory"),
    ):
        fig, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4), squeeze=False)
        for ax, backend in zip(axes[0], backends, strict=True):
            series = {}
            for r in points.values():
                if r["backend"] == backend and r.get("status") == "ok" and key in r:
                    if r["kind"] == "block":
                        label = f"{r['mixer']} block" + (
                            f", remat={r['remat']}" if r.get("remat") else ""
                        )
                        series.setdefault(label, []).append((r["length"], r[key]))
                    elif r["kind"] == "floor":
                        series.setdefault("rfft+irfft", []).append((r["length"], r[key]))
            for label, xy in sorted(series.items()):
                xy.sort()
                draw = ax.loglog if suffix == "time" else ax.semilogx
                draw(*zip(*xy, strict=True), marker="o", label=label)
            if suffix == "memory":  # copies: a flat line is memory linear in the length
                ax.axhline(16, linestyle="--", color="gray", label="target: 16 copies")
                ax.set_ylim(bottom=0)
            ax.set_title(backend)
            ax.set_xlabel("tokens")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            if series:
                ax.legend(fontsize=8)
        machine = payload.get("machine", {})
        fig.suptitle(
            f"batch 1, width 64, 4 heads, float32 — {machine.get('cpu', '')}, "
            f"{machine.get('cpu_count', '?')} cores",
            fontsize=9,
        )
        fig.tight_layout()
        out = os.path.join(out_dir, f"{stem}-{suffix}.png")
        fig.savefig(out, dpi=110)
        plt.close(fig)
        written.append(out)
    return written


# ------------------------------------------------------------------------------------ main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--backends", nargs="+", choices=harness.BACKENDS, default=None)
    parser.add_argument("--mixers", nargs="+", default=None, help="default: every registered")
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument(
        "--sp-mixers", nargs="+", default=["fftnet"], help="mixers of the sp points"
    )
    parser.add_argument(
        "--train-backends", nargs="+", default=["jax", "torch"], help="backends of the train points"
    )
    parser.add_argument(
        "--remat",
        default=None,
        help="the blocks' `remat` (e.g. full, mixer, mlp): separate points, ids end in remat=MODE",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny lengths: a smoke test")
    parser.add_argument("--force", action="store_true", help="run points already in --out again")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds one point's process may take"
    )
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--dry-run", action="store_true", help="list the points and stop")
    parser.add_argument("--report", action="store_true", help="tables and plots from --out")
    parser.add_argument("--no-plot", action="store_true", help="with --report: tables only")
    parser.add_argument("--comm-table", action="store_true", help="the all-to-all table")
    return parser


def source() -> dict:
    """The commit measured, and the files under `spectralmix/` that differ from it (work in
    progress in the checkout is measured too)."""

    def git(*args):
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    changed = git("status", "--porcelain", "--", "spectralmix")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": [line.split(maxsplit=1)[-1] for line in (changed or "").splitlines()],
    }


def _load(path: str) -> dict:
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker), args.repeats)))
        return 0
    if args.comm_table:
        print(comm_table())
        return 0
    if args.report:
        payload = _load(args.out)
        print(block_table(payload["points"]))
        print()
        print(ratio_table(payload["points"]))
        print()
        print(sp_table(payload["points"]))
        print()
        print(json.dumps(payload["summary"], indent=2))
        if not args.no_plot:
            for written in plot(args.out):
                print(f"wrote {written}", file=sys.stderr)
        return 0
    from spectralmix.registry import token_mixer_names

    args.backends = args.backends or harness.installed_backends()
    args.mixers = args.mixers or list(token_mixer_names())
    args.lengths = args.lengths or (QUICK_LENGTHS if args.quick else DEFAULT_LENGTHS)
    if args.quick:
        args.repeats = 1
    points = plan(args)
    if args.dry_run:
        for p in points:
            print(point_id(p))
        return 0
    payload = _load(args.out)
    rows: dict = payload.get("points", {})
    payload.setdefault("notes", [])
    for p in points:
        key = point_id(p)
        if not args.force and rows.get(key, {}).get("status") in FINAL:
            continue
        missing = importlib.util.find_spec("spectralmix.sequence_parallel") is None
        refused = guard(p, rows, meminfo())
        if p["kind"] == "sp" and missing:  # no process needed to say so
            rows[key] = {**p, "status": "skipped", "note": SP_MISSING}
        elif refused:
            rows[key] = {**p, **refused}
        else:
            print(f"{time.strftime('%H:%M:%S')} {key} ...", file=sys.stderr, flush=True)
            rows[key] = run_point(p, args.repeats, args.timeout)
        rows[key]["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
        line = {k: v for k, v in rows[key].items() if k not in ("versions", "times_s")}
        print(f"{time.strftime('%H:%M:%S')} {json.dumps(line)[:400]}", file=sys.stderr, flush=True)
        payload.update(
            {
                "machine": harness.machine(),
                "config": {
                    "batch": BATCH,
                    "channels": CHANNELS,
                    "heads": HEADS,
                    "filter_length": FILTER_LENGTH,
                    "long_call_s": LONG_CALL_S,
                },
                "source": source(),
                "points": rows,
                "summary": summarise(rows),
            }
        )
        harness.write_json(args.out, payload)
    if not payload.get("points"):
        return 0
    payload["summary"] = summarise(rows)
    harness.write_json(args.out, payload)
    print(json.dumps(payload["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
