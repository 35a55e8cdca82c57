"""Native spectral cores vs the keras.ops fallback (the measurement behind the shim choice).

`python benchmarks/bench_shims.py` runs every installed framework, each in its own process
(Keras fixes the backend per process), and writes `benchmarks/results/shims-cpu.json`.
Timings are medians over repeats after warm-up; the ratio is keras_ops / native.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

BACKENDS = ("jax", "tensorflow", "torch")
HERE = os.path.dirname(os.path.abspath(__file__))


def _median_ms(fn, repeats: int) -> float:
    fn()
    fn()  # warm-up: compilation and allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def _runners(backend: str, forward, x: np.ndarray, scale: np.ndarray):
    """`(run_forward, run_forward_backward)` for `forward`, compiled the way Keras runs it."""
    if backend == "jax":
        import jax

        fwd = jax.jit(forward)
        grad = jax.jit(jax.grad(lambda xx, ss: forward(xx, ss).sum(), argnums=(0, 1)))
        xs, ss = jax.numpy.asarray(x), jax.numpy.asarray(scale)
        return (
            lambda: fwd(xs, ss).block_until_ready(),
            lambda: jax.block_until_ready(grad(xs, ss)),
        )
    if backend == "tensorflow":
        import tensorflow as tf

        fwd = tf.function(forward)

        @tf.function
        def grad(xx, ss):
            with tf.GradientTape() as tape:
                tape.watch([xx, ss])
                loss = tf.reduce_sum(forward(xx, ss))
            return tape.gradient(loss, [xx, ss])

        xs, ss = tf.constant(x), tf.constant(scale)
        return (lambda: fwd(xs, ss).numpy(), lambda: [g.numpy() for g in grad(xs, ss)])
    import torch

    xs = torch.tensor(x, requires_grad=True)
    ss = torch.tensor(scale, requires_grad=True)

    def run_forward():
        with torch.no_grad():
            forward(xs, ss)

    def run_forward_backward():
        forward(xs, ss).sum().backward()
        xs.grad = ss.grad = None

    return run_forward, run_forward_backward


def _measure(backend: str, batch: int, length: int, channels: int, heads: int, repeats: int):
    import keras

    from spectralmix.backends import get_backend

    rng = np.random.default_rng(0)
    bins = length // 2 + 1
    x = rng.standard_normal((batch, length, channels)).astype("float32")
    scale = (1 + 0.1 * rng.standard_normal((batch, heads, bins))).astype("float32")
    shift = keras.ops.convert_to_tensor(np.full((1, heads, bins), -0.1, "float32"))
    results = {}
    for core_name in (backend, "keras_ops"):
        core = get_backend(core_name)

        def forward(xx, ss, core=core):
            return core.spectral_filter(xx, ss, shift, num_heads=heads, activation="modrelu")

        run_forward, run_forward_backward = _runners(backend, forward, x, scale)
        results[core_name] = {
            "forward_ms": _median_ms(run_forward, repeats),
            "forward_backward_ms": _median_ms(run_forward_backward, repeats),
        }
    native, portable = results[backend], results["keras_ops"]
    return {
        "backend": backend,
        "keras": keras.__version__,
        "framework_version": __import__(backend).__version__,
        "shape": [batch, length, channels],
        "num_heads": heads,
        "native": native,
        "keras_ops": portable,
        "keras_ops_over_native": {
            k: round(portable[k] / native[k], 2) for k in ("forward_ms", "forward_backward_ms")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "shims-cpu.json"))
    args = parser.parse_args()
    sizes = [
        "--batch",
        str(args.batch),
        "--length",
        str(args.length),
        "--channels",
        str(args.channels),
        "--heads",
        str(args.heads),
        "--repeats",
        str(args.repeats),
    ]
    if args.worker:
        print(
            json.dumps(
                _measure(
                    args.worker, args.batch, args.length, args.channels, args.heads, args.repeats
                )
            )
        )
        return
    rows = []
    for backend in BACKENDS:
        if importlib.util.find_spec(backend) is None:
            print(f"skipping {backend}: not installed", file=sys.stderr)
            continue
        env = {**os.environ, "KERAS_BACKEND": backend}
        out = subprocess.run(
            [sys.executable, __file__, "--worker", backend, *sizes],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "results": rows,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(
        "| backend | native fwd | keras.ops fwd | ratio | native fwd+bwd | keras.ops fwd+bwd "
        "| ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        n, k, q = r["native"], r["keras_ops"], r["keras_ops_over_native"]
        print(
            f"| {r['backend']} | {n['forward_ms']:.1f} ms | {k['forward_ms']:.1f} ms | "
            f"{q['forward_ms']}x | {n['forward_backward_ms']:.1f} ms | "
            f"{k['forward_backward_ms']:.1f} ms | {q['forward_backward_ms']}x |"
        )


if __name__ == "__main__":
    main()
