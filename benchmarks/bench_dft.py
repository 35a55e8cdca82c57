"""FFT vs DFT-as-matmul spectral core: forward time by sequence length, per backend (CPU).

`python benchmarks/bench_dft.py` runs every installed framework, each in its own process
(Keras fixes the backend per process), and writes `benchmarks/results/dft-cpu.json`. Both
contenders compute the same function (`spectral_filter`, modReLU, orthonormal transforms):
the backend's native FFT core and `spectralmix.backends.dft` (two matmuls against cos/sin
matrices of the length). Forward only, compiled the way Keras runs it (`jax.jit`,
`tf.function`, eager torch under `no_grad`). torch runs on one thread: on the shared 2-core
machine its two-thread pool waited on descheduled workers, and both cores then took the same
23–170 ms per call whatever the length (recorded in the JSON as `threads`).

The two contenders are timed in alternation (one call each per round, after warm-up), so both
see the same load on a shared machine, and the figures are the minimum and the median over
the rounds. The crossover uses the minimum (load only ever adds time): it is the longest
measured length at which the DFT is faster, beyond which the FFT wins at every measured
length. `spectralmix.backends.dft.CROSSOVER` is set from it.
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
LENGTHS = [8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024]


def _runner(backend: str, forward, x: np.ndarray, scale: np.ndarray):
    if backend == "jax":
        import jax

        fwd = jax.jit(forward)
        xs, ss = jax.numpy.asarray(x), jax.numpy.asarray(scale)
        return lambda: fwd(xs, ss).block_until_ready()
    if backend == "tensorflow":
        import tensorflow as tf

        fwd = tf.function(forward)
        xs, ss = tf.constant(x), tf.constant(scale)
        return lambda: fwd(xs, ss).numpy()
    import torch

    torch.set_num_threads(1)
    xs, ss = torch.tensor(x), torch.tensor(scale)

    def run():
        with torch.no_grad():
            forward(xs, ss)

    return run


def _threads(backend: str):
    if backend == "torch":
        import torch

        return torch.get_num_threads()
    return "framework default"


def _alternating_ms(runs: dict, repeats: int, warmup: int = 2) -> dict:
    """`{label: (min_ms, median_ms)}`, timing the callables in turn, once each per round."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times = {label: [] for label in runs}
    for _ in range(repeats):
        for label, run in runs.items():
            start = time.perf_counter()
            run()
            times[label].append((time.perf_counter() - start) * 1e3)
    return {k: (float(np.min(v)), float(np.median(v))) for k, v in times.items()}


def _measure(backend: str, lengths, batch: int, channels: int, heads: int, repeats: int):
    import keras

    from spectralmix.backends import get_backend

    rng = np.random.default_rng(0)
    rows = []
    for length in lengths:
        bins = length // 2 + 1
        x = rng.standard_normal((batch, length, channels)).astype("float32")
        scale = (1 + 0.1 * rng.standard_normal((batch, heads, bins))).astype("float32")
        shift = keras.ops.convert_to_tensor(np.full((1, heads, bins), -0.1, "float32"))
        runs = {}
        for label, core in (("fft", get_backend()), ("dft", get_backend("dft"))):

            def forward(xx, ss, core=core, shift=shift):
                return core.spectral_filter(xx, ss, shift, num_heads=heads, activation="modrelu")

            runs[label] = _runner(backend, forward, x, scale)
        timed = _alternating_ms(runs, repeats)
        row = {"length": length}
        for label, (best, median) in timed.items():
            row[f"{label}_ms"], row[f"{label}_median_ms"] = best, median
        row["dft_over_fft"] = round(row["dft_ms"] / row["fft_ms"], 3)
        rows.append(row)
    return {
        "backend": backend,
        **harness.versions(backend),
        "shape": {"batch": batch, "channels": channels, "num_heads": heads},
        "threads": _threads(backend),
        "rows": rows,
        "crossover": crossover(rows),
    }


def crossover(rows: list[dict]) -> int:
    """The longest measured length at which the DFT (minimum time) beats the FFT, 0 if never."""
    wins = [row["length"] for row in rows if row["dft_ms"] < row["fft_ms"]]
    return max(wins, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=harness.BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--lengths", type=int, nargs="+", default=LENGTHS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "dft-cpu.json"))
    args = parser.parse_args()
    sizes = ["--lengths", *map(str, args.lengths)]
    for flag in ("batch", "channels", "heads", "repeats"):
        sizes += [f"--{flag}", str(getattr(args, flag))]
    if args.worker:
        result = _measure(
            args.worker, args.lengths, args.batch, args.channels, args.heads, args.repeats
        )
        print(json.dumps(result))
        return
    results = [
        harness.run_worker(__file__, backend, sizes, timeout=1800)
        for backend in harness.installed_backends()
    ]
    harness.write_json(args.out, {"machine": harness.machine(), "results": results})
    print("| backend | " + " | ".join(str(n) for n in args.lengths) + " | crossover |")
    print("| --- " * (len(args.lengths) + 2) + "|")
    for r in results:
        cells = [f"{row['dft_ms']:.2f}/{row['fft_ms']:.2f}" for row in r["rows"]]
        print(f"| {r['backend']} (DFT/FFT ms) | " + " | ".join(cells) + f" | {r['crossover']} |")


if __name__ == "__main__":
    main()
