"""Shared benchmark machinery: timing, memory, machine facts and one process per backend.

Benchmarks are measurements, not tests. Every figure is a median over repeats after warm-up
(compilation excluded); ratios compare contenders measured in the same run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

BACKENDS = ("jax", "tensorflow", "torch")


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall time of `fn()` in ms; `fn` must block until its result is ready."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        info["cpu"] = names[0] if names else ""
    except OSError:
        info["cpu"] = platform.processor()
    return info


def versions(backend: str) -> dict:
    import keras

    return {"keras": keras.__version__, backend: __import__(backend).__version__}


def installed_backends() -> list[str]:
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def run_worker(script: str, backend: str, args: list[str], timeout: float) -> dict:
    """Runs `script --worker BACKEND ARGS` with `KERAS_BACKEND=backend`; returns its last JSON
    line (Keras fixes the backend per process, so each backend gets its own)."""
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(
        [sys.executable, script, "--worker", backend, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{backend} worker failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)  # a failed run leaves the previous file whole
