"""Spectral cores against each other, paired in one process per backend (the measurement behind
the shim choice, `docs/benchmarks.md`, "The spectral core decision").

`python benchmarks/bench_shims.py` runs every installed framework, each in its own process
(Keras fixes the backend per process), and writes `benchmarks/results/shims-cpu.json`. In a
worker, at each shape, every contender's forward and forward+backward are timed call by call in
turn, rotating which contender goes first, so drifts in the machine's speed reach all alike;
figures are medians over the rounds after a warm-up call, of wall time and of the process's CPU
time. Contenders:

- `active`: the core the layers use on this backend (`spectralmix.backends.get_backend()`);
- `keras_ops`: the portable core, written on `keras.ops` alone;
- `baseline` (with `--baseline DIR`): the module `DIR/<backend>.py`, e.g. a shim of an earlier
  commit (`git show REV:spectralmix/backends/jax.py > DIR/jax.py`).

Ops: `modrelu` (`spectral_filter`, the layers' default `epsilon`), `gelu` (the v2 activation)
and `fourier_mixing`. Memory, where the backend reports it, is the peak of the bytes the call
allocates on top of its inputs: JAX the compiled executable's `memory_analysis()` (temporaries
plus outputs), TensorFlow the CPU allocator's peak (`tf.config.experimental.get_memory_info`),
torch the running sum of `torch.profiler`'s allocation events; torch also counts the
allocations of 1 MiB or more. Kernels, counted the same way each time: the computing
instructions of the compiled XLA entry computation (JAX), the computing nodes of the
`tf.function` graph (TensorFlow), the innermost computing ATen operators of one call (torch).

`python benchmarks/bench_shims.py --backends torch --shapes 8x4096x256 --ops modrelu` narrows
a run; `table()` prints any two contenders of a results file against each other.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness

HERE = os.path.dirname(os.path.abspath(__file__))
OPS = ("modrelu", "gelu", "fourier_mixing")
DEFAULT_SHAPES = ["8x1024x128", "8x4096x256"]
#: The layers' default `modrelu_epsilon`.
EPSILON = 1e-3
LARGE = 2**20  # bytes: torch counts allocations from this size


class Runners:
    """One contender's calls, compiled as Keras runs them (`jax.jit`, `tf.function`, eager
    torch): `forward()` and `forward_backward()` block until their results are ready;
    `peak_bytes()` and `kernels()` are `{"forward": ..., "forward_backward": ...}`."""

    def __init__(self, backend: str, fn, inputs: list[np.ndarray]):
        getattr(self, f"_{backend}")(fn, inputs)

    def _jax(self, fn, inputs):
        import jax

        args = [jax.numpy.asarray(a) for a in inputs]
        fwd = jax.jit(fn).lower(*args).compile()
        argnums = tuple(range(len(args)))
        grad = jax.jit(jax.grad(lambda *a: fn(*a).sum(), argnums=argnums)).lower(*args).compile()
        self.forward = lambda: fwd(*args).block_until_ready()
        self.forward_backward = lambda: jax.block_until_ready(grad(*args))

        def peak(compiled):
            stats = compiled.memory_analysis()
            return int(stats.temp_size_in_bytes + stats.output_size_in_bytes)

        self.peak_bytes = lambda: {"forward": peak(fwd), "forward_backward": peak(grad)}
        self.kernels = lambda: {
            "forward": _xla_kernels(fwd),
            "forward_backward": _xla_kernels(grad),
        }

    def _tensorflow(self, fn, inputs):
        import tensorflow as tf

        args = [tf.constant(a) for a in inputs]
        fwd = tf.function(fn)

        @tf.function
        def grad(*xs):
            with tf.GradientTape() as tape:
                tape.watch(xs)
                loss = tf.reduce_sum(fn(*xs))
            return tape.gradient(loss, xs)

        self.forward = lambda: fwd(*args).numpy()
        self.forward_backward = lambda: [g.numpy() for g in grad(*args)]

        def peak(call):
            tf.config.experimental.reset_memory_stats("CPU:0")
            before = tf.config.experimental.get_memory_info("CPU:0")["current"]
            call()
            return tf.config.experimental.get_memory_info("CPU:0")["peak"] - before

        self.peak_bytes = lambda: {
            "forward": peak(self.forward),
            "forward_backward": peak(self.forward_backward),
        }

        def nodes(function, *xs):
            graph = function.get_concrete_function(*xs).graph
            return sum(op.type not in TF_NOT_KERNELS for op in graph.get_operations())

        self.kernels = lambda: {
            "forward": nodes(fwd, *args),
            "forward_backward": nodes(grad, *args),
        }

    def _torch(self, fn, inputs):
        import torch

        args = [torch.tensor(a, requires_grad=True) for a in inputs]

        def forward():
            with torch.no_grad():
                fn(*args)

        def forward_backward():
            fn(*args).sum().backward()
            for a in args:
                a.grad = None

        self.forward, self.forward_backward = forward, forward_backward
        self.peak_bytes = lambda: {
            "forward": _torch_allocations(forward),
            "forward_backward": _torch_allocations(forward_backward),
        }
        self.kernels = lambda: {
            "forward": _torch_kernels(forward),
            "forward_backward": _torch_kernels(forward_backward),
        }


#: Graph nodes that run no computation of their own (TensorFlow).
TF_NOT_KERNELS = {"Placeholder", "Const", "Identity", "NoOp", "Shape", "StopGradient"}
#: Instructions of a compiled XLA entry computation that launch no kernel.
XLA_NOT_KERNELS = ("parameter(", "get-tuple-element(", "tuple(", "bitcast(", "constant(")


def _xla_kernels(compiled) -> int:
    """The instructions of `compiled`'s entry computation that compute (fusions, FFTs, copies)."""
    text = compiled.as_text()
    entry = text[text.index("\nENTRY") :]
    lines = entry[: entry.index("\n}")].splitlines()[1:]
    return sum(not any(f" {op}" in line for op in XLA_NOT_KERNELS) for line in lines)


def _torch_kernels(call) -> int:
    """The ATen operators `call()` runs that compute: the innermost ones (an op that calls
    others, such as `aten::to`, counts through them), views and allocations excluded."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        call()
    return sum(
        e.name.startswith("aten::")
        and e.name not in TORCH_NOT_KERNELS
        and not any(c.name.startswith("aten::") for c in e.cpu_children)
        for e in prof.events()
    )


#: ATen operators that allocate, reinterpret or pass memory through but compute nothing (a
#: leaf `aten::to` is a conversion that returned its input).
_NO_COMPUTE = """empty empty_like empty_strided new_empty new_empty_strided as_strided
as_strided_ resize_ view _unsafe_view _reshape_alias reshape permute transpose t unsqueeze select
slice expand view_as_real view_as_complex real imag resolve_conj result_type detach alias
lift_fresh to"""
TORCH_NOT_KERNELS = frozenset(f"aten::{name}" for name in _NO_COMPUTE.split())


def _torch_allocations(call) -> dict:
    """`{"peak": bytes, "large": count}` of one `call()`: the running sum of the profiler's
    allocation (+) and free (-) events in time order, and the allocations of `LARGE` or more."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )
    live = peak = large = 0
    for _, size in events:
        live += size
        peak = max(peak, live)
        large += size >= LARGE
    return {"peak": peak, "large": large}


def _load_file(path: str):
    spec = importlib.util.spec_from_file_location(os.path.abspath(path), path)  # named by path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _contenders(backend: str, baseline: str | None) -> dict:
    from spectralmix.backends import get_backend

    cores = {"active": get_backend(), "keras_ops": get_backend("keras_ops")}
    if baseline:
        cores["baseline"] = _load_file(os.path.join(baseline, f"{backend}.py"))
    return cores


def _op_fn(core, op: str, heads: int, shift):
    if op == "fourier_mixing":
        return lambda x, s: core.fourier_mixing(x) * s[0, 0, 0]  # s: keeps one signature
    activation = "modrelu" if op == "modrelu" else "gelu"
    epsilon = EPSILON if op == "modrelu" else 0.0

    def fn(x, s):
        return core.spectral_filter(
            x, s, shift, num_heads=heads, activation=activation, epsilon=epsilon
        )

    return fn


def _inputs(shape: tuple[int, int, int], heads: int) -> tuple[list[np.ndarray], np.ndarray]:
    batch, length, channels = shape
    rng = np.random.default_rng(0)
    bins = length // 2 + 1
    x = rng.standard_normal((batch, length, channels)).astype("float32")
    scale = (1 + 0.1 * rng.standard_normal((batch, heads, bins))).astype("float32")
    return [x, scale], np.full((1, heads, bins), -0.1, "float32")


def _paired_times(runs: dict, repeats: int) -> dict:
    """Medians of `repeats` rounds, wall time and the process's CPU time (all threads: less
    moved than wall time by other processes on a shared machine); round `r` starts from
    contender `r mod len(runs)`."""
    names = list(runs)
    for run in runs.values():  # compilation, warm-up
        run.forward_backward()
        run.forward()
    kinds = ("forward", "forward_backward")
    times = {
        name: {f"{k}{unit}": [] for k in kinds for unit in ("_ms", "_cpu_ms")} for name in names
    }
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for kind in kinds:
                call = getattr(runs[name], kind)
                tick, cpu = time.perf_counter(), time.process_time()
                call()
                times[name][f"{kind}_cpu_ms"].append((time.process_time() - cpu) * 1e3)
                times[name][f"{kind}_ms"].append((time.perf_counter() - tick) * 1e3)
    return {
        name: {key: round(float(np.median(t)), 2) for key, t in by_key.items()}
        for name, by_key in times.items()
    }


def _measure_shape(backend, cores, op, shape, heads, repeats) -> dict:
    import keras

    (x, scale), shift = _inputs(shape, heads)
    shift = keras.ops.convert_to_tensor(shift)
    runs = {
        name: Runners(backend, _op_fn(core, op, heads, shift), [x, scale])
        for name, core in cores.items()
    }
    row = {"op": op, "shape": list(shape), "num_heads": heads, "repeats": repeats}
    row |= {"times": _paired_times(runs, repeats)}
    row["memory"] = {name: run.peak_bytes() for name, run in runs.items()}
    row["kernels"] = {name: run.kernels() for name, run in runs.items()}
    active, portable = row["times"]["active"], row["times"]["keras_ops"]
    row["keras_ops_over_active"] = {k: round(portable[k] / active[k], 2) for k in active}
    if "baseline" in row["times"]:
        base = row["times"]["baseline"]
        row["active_over_baseline"] = {k: round(active[k] / base[k], 2) for k in active}
    return row


def _measure(backend: str, shapes, heads: int, repeats: int, ops, baseline) -> dict:
    import keras

    cores = _contenders(backend, baseline)
    load_before = os.getloadavg()
    rows = [
        _measure_shape(backend, cores, op, shape, heads, repeats) for shape in shapes for op in ops
    ]
    return {
        "backend": backend,
        "cores": {name: core.__name__ for name, core in cores.items()},
        "keras": keras.__version__,
        "versions": harness.versions(backend),
        # the machine's 1-minute load average as the worker started and ended (2 cores: above
        # 2, other processes were waiting for them)
        "load_average_1min": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "rows": rows,
    }


def _shape(text: str) -> tuple[int, int, int]:
    batch, length, channels = (int(v) for v in text.lower().split("x"))
    return batch, length, channels


def _megabytes(memory) -> str:
    fb = memory["forward_backward"]
    if isinstance(fb, dict):  # torch: peak and large allocations
        return f"{fb['peak'] / 2**20:.0f} ({fb['large']})"
    return f"{fb / 2**20:.0f}"


def _pair(values: dict, unit: str = "") -> str:
    return f"{values[f'forward{unit}']} / {values[f'forward_backward{unit}']}"


def table(results: list[dict], first: str = "active", second: str = "keras_ops") -> str:
    """A Markdown table of contender `second` against `first`: wall times, the ratios of wall
    and CPU time (`second / first`, forward / forward+backward), the peak memory of a
    forward+backward (torch: with the count of allocations of 1 MiB or more) and the kernels
    (XLA entry instructions, TensorFlow graph nodes, ATen operators)."""
    lines = [
        f"| backend | op | shape | {first} ms | {second} ms | wall ratio | CPU ratio "
        f"| peak MB, {first} | {second} | kernels, {first} | {second} |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        for r in result["rows"]:
            a, b = r["times"][first], r["times"][second]
            ratio = {k: round(b[k] / a[k], 2) for k in a}
            lines.append(
                f"| {result['backend']} | {r['op']} | {'x'.join(map(str, r['shape']))} "
                f"| {_pair(a, '_ms')} | {_pair(b, '_ms')} "
                f"| {_pair(ratio, '_ms')} | {_pair(ratio, '_cpu_ms')} "
                f"| {_megabytes(r['memory'][first])} | {_megabytes(r['memory'][second])} "
                f"| {_pair(r['kernels'][first])} | {_pair(r['kernels'][second])} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=harness.BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--backends", nargs="+", choices=harness.BACKENDS, default=None)
    parser.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES, help="BxNxD")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--baseline", help="a folder with <backend>.py cores to time as well")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch's intra-op threads (default: torch's own); on a shared machine 1 keeps "
        "torch's threads from waiting on each other at every op",
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results", "shims-cpu.json"))
    args = parser.parse_args()
    shapes = [_shape(s) for s in args.shapes]
    if args.worker:
        if args.worker == "torch" and args.torch_threads:
            import torch

            torch.set_num_threads(args.torch_threads)
        result = _measure(args.worker, shapes, args.heads, args.repeats, args.ops, args.baseline)
        print(json.dumps(result))
        return
    worker_args = ["--shapes", *args.shapes, "--heads", str(args.heads), "--ops", *args.ops]
    worker_args += ["--repeats", str(args.repeats)]
    if args.baseline:
        worker_args += ["--baseline", os.path.abspath(args.baseline)]
    if args.torch_threads:
        worker_args += ["--torch-threads", str(args.torch_threads)]
    wanted = args.backends or harness.installed_backends()
    skipped = harness.skipped_backends(wanted)
    results = [
        harness.run_worker(__file__, backend, worker_args, timeout=1800)
        for backend in wanted
        if backend not in skipped
    ]
    config = {"shapes": args.shapes, "heads": args.heads, "repeats": args.repeats}
    config["torch_threads"] = args.torch_threads
    config |= {"epsilon": EPSILON, "baseline": args.baseline}
    payload = {"machine": harness.machine(), "config": config, "skipped": skipped}
    harness.write_json(args.out, payload | {"results": results})
    print(table(results))
    if args.baseline:
        print(table(results, "baseline", "active"))


if __name__ == "__main__":
    main()
