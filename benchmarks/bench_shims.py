"""Native spectral cores vs the keras.ops fallback (the measurement behind the shim choice).

`python benchmarks/bench_shims.py` runs every installed framework, each in its own process
(Keras fixes the backend per process), and writes `benchmarks/results/shims-cpu.json`.
Timings are medians over repeats after warm-up; the ratio is keras_ops / native.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness

HERE = os.path.dirname(os.path.abspath(__file__))


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
            "forward_ms": harness.median_ms(run_forward, repeats),
            "forward_backward_ms": harness.median_ms(run_forward_backward, repeats),
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
    parser.add_argument("--worker", choices=harness.BACKENDS, help=argparse.SUPPRESS)
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
    rows = [
        harness.run_worker(__file__, backend, sizes, timeout=1800)
        for backend in harness.installed_backends()
    ]
    harness.write_json(args.out, {"machine": harness.machine(), "results": rows})
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
