"""GPU benchmarks: the layer table under mixed_bfloat16 (with the frameworks' fused attention
kernels as a contender) and FFTNetViT-base against its attention baseline at 224 (training
throughput). Sized to finish in a few minutes on one H100.

With no GPU visible to torch or JAX it prints why and exits 0 (a skip, not a failure).
`nox -s bench_gpu` runs it in the machine's own Python (`venv_backend="none"`). Every backend
installed there runs, each worker refusing to time a CPU (`--expect-gpu`); a backend that is
not installed (TensorFlow, on a machine whose image has none) is recorded as skipped, with why.

The layer and model scripts run at the same time, four and two worker processes at once,
sharing a timing lock: start-up, imports and JAX's ahead-of-time compilation of the layer
contenders overlap; anything that runs on the GPU (warm-up, Keras's compiling first training
steps, timing) holds the lock, so no two workers use the GPU at once. The wall time of
the whole run goes to `gpu-run.json`. `--sequential` runs one worker at a time instead.

`--dry-run` runs the same code path at tiny sizes on whatever device is here (the CPU too),
writing into `--out-dir` (a temporary folder unless given), to check the script before a GPU
run.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

ROOT = os.path.dirname(HERE)

FULL = {
    "lengths": ["1024", "4096", "16384", "65536"],
    "repeats": "5",
    "vit_preset": "fftnet_vit_base_patch16_224",
    "vit_layers": "12",
    "batch": "64",
    "steps": "5",
    "worker_timeout": "240",
    "parallel": "4",
    "model_parallel": "2",
}
DRY = {
    "lengths": ["64", "128"],
    "repeats": "1",
    "vit_preset": "fftnet_vit_tiny_patch16_224",
    "vit_layers": "1",
    "batch": "2",
    "steps": "1",
    "worker_timeout": "600",
    "parallel": "2",
    "model_parallel": "2",
}


def gpu_name() -> str | None:
    """The first GPU's name: from nvidia-smi where it is present (no framework then holds GPU
    memory in this parent process), else as torch or JAX see it."""
    gpus = harness.nvidia_gpus()
    if gpus:
        return gpus[0]["name"]
    if importlib.util.find_spec("torch"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    if importlib.util.find_spec("jax"):
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        if gpus:
            return gpus[0].device_kind
    return None


def commands(out_dir: str, sizes: dict, expect_gpu: bool, backends: list[str] | None) -> list:
    gpu_flags = ["--expect-gpu"] if expect_gpu else []
    backend_flags = ["--backends", *backends] if backends else []
    return [
        [
            sys.executable,
            os.path.join(HERE, "bench_layers.py"),
            "--policy",
            "mixed_bfloat16",
            "--contenders",
            "ours",
            "handwritten",
            "fft_floor",
            "attention",
            "fused_attention",
            "fnet",
            "--lengths",
            *sizes["lengths"],
            "--repeats",
            sizes["repeats"],
            "--paired-repeats",  # the paired worker serves the CPU targets; not on the GPU clock
            "0",
            "--worker-timeout",
            sizes["worker_timeout"],
            "--parallel",
            sizes["parallel"],
            *gpu_flags,
            *backend_flags,
            "--out",
            os.path.join(out_dir, "layers-gpu.json"),
        ],
        [
            sys.executable,
            os.path.join(HERE, "bench_models.py"),
            "--policy",
            "mixed_bfloat16",
            "--vit-preset",
            sizes["vit_preset"],
            "--vit-layers",
            sizes["vit_layers"],
            "--batch",
            sizes["batch"],
            "--steps",
            sizes["steps"],
            "--lengths",  # no sequence models on the GPU: the ViT is the table
            "--worker-timeout",
            sizes["worker_timeout"],
            "--parallel",
            sizes["model_parallel"],
            *gpu_flags,
            *backend_flags,
            "--out",
            os.path.join(out_dir, "models-gpu.json"),
        ],
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="the same code path at tiny sizes on any device (the CPU too), into --out-dir",
    )
    parser.add_argument("--out-dir", default=None, help="default: benchmarks/results")
    parser.add_argument("--backends", nargs="+", default=None, help="default: all installed")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="one worker at a time (about 6 minutes on an H200 instead of 2.5): no other "
        "worker's compilation (XLA autotunes on the GPU) can disturb a timing",
    )
    args = parser.parse_args()
    name = gpu_name()
    if name is None and not args.dry_run:
        print("bench_gpu: no GPU visible to torch or jax here; skipping the GPU benchmarks.")
        return 0
    out_dir = args.out_dir or (
        tempfile.mkdtemp(prefix="bench_gpu_dry_") if args.dry_run else os.path.join(HERE, "results")
    )
    print(f"bench_gpu: running on {name or 'the CPU (dry run)'}; results in {out_dir}", flush=True)
    # The workers import spectralmix from this checkout. Both scripts run at once, their
    # workers side by side, sharing one timing lock: start-up and host-side compilation
    # overlap, and no two workers use the GPU at once (harness.timing_lock).
    with tempfile.TemporaryDirectory(prefix="bench_gpu_lock_") as lock_dir:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
            harness.LOCK_ENV: os.path.join(lock_dir, "timing.lock"),
        }
        return _run(args, name, out_dir, env)


def _run(args, name: str | None, out_dir: str, env: dict) -> int:
    """Runs the layer and model scripts (side by side unless `--sequential`), records the
    wall time in `gpu-run.json`, and returns nonzero if either failed."""
    sizes = DRY if args.dry_run else FULL
    if args.sequential:
        sizes = {**sizes, "parallel": "1", "model_parallel": "1"}
    start = time.perf_counter()
    failed = 0
    seconds: dict[str, float] = {}
    running = []
    for command in commands(out_dir, sizes, expect_gpu=name is not None, backends=args.backends):
        process = subprocess.Popen(command, env=env)
        script = os.path.basename(command[1])
        running.append((script, process))
        if args.sequential:
            failed |= process.wait()
            seconds[script] = round(time.perf_counter() - start, 1)
    while len(seconds) < len(running):
        for script, process in running:
            if script not in seconds and process.poll() is not None:
                failed |= process.returncode
                seconds[script] = round(time.perf_counter() - start, 1)
                print(f"bench_gpu: {script} finished after {seconds[script]:.0f} s", flush=True)
        time.sleep(0.5)
    total = round(time.perf_counter() - start, 1)
    print(f"bench_gpu: {total:.0f} s in all", flush=True)
    harness.write_json(
        os.path.join(out_dir, "gpu-run.json"),
        {
            "gpu": name,
            "machine": harness.machine(),
            "sequential": args.sequential,
            "seconds": seconds,
            "total_seconds": total,
        },
    )
    return failed


if __name__ == "__main__":
    sys.exit(main())
