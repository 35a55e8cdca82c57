"""Shared benchmark machinery: timing, memory, machine facts and one process per backend.

Benchmarks are measurements, not tests. Every figure is a median over repeats after warm-up
(compilation excluded); ratios compare contenders measured in the same run.
"""

from __future__ import annotations

import contextlib
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
#: Names a lock file that worker processes running side by side take while they time (see
#: `timing_lock`); unset, each worker has the device to itself anyway.
LOCK_ENV = "SPECTRALMIX_BENCH_LOCK"


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


@contextlib.contextmanager
def timing_lock():
    """Exclusive use of the device while timing.

    Workers may run side by side (`run_workers(parallel=...)`, as `bench_gpu.py` does) so that
    start-up, imports, model building and ahead-of-time compilation overlap. Each worker holds
    this lock whenever it runs anything on the device (warm-up and first calls included, which
    would otherwise slow the one timing), so no two workers use the device at once. Without
    `LOCK_ENV` in the environment it does nothing.
    """
    path = os.environ.get(LOCK_ENV)
    if not path:
        yield
        return
    import fcntl

    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
    gpus = nvidia_gpus()
    if gpus:
        info["gpus"] = gpus
    return info


def nvidia_gpus() -> list[dict]:
    """What `nvidia-smi` reports for each GPU (name, driver, memory); empty where it is absent."""
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    gpus = []
    for line in out.stdout.strip().splitlines():
        name, driver, memory = (part.strip() for part in line.split(","))
        gpus.append({"name": name, "driver": driver, "memory": memory})
    return gpus


def versions(backend: str) -> dict:
    from importlib import metadata

    import keras

    out = {
        "keras": keras.__version__,
        backend: __import__(backend).__version__,
        "numpy": np.__version__,
    }
    if backend == "jax":
        for dist in ("jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin"):
            with contextlib.suppress(metadata.PackageNotFoundError):
                out[dist] = metadata.version(dist)
    if backend == "torch":
        import torch

        out["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            out["cudnn"] = torch.backends.cudnn.version()
    return out


def device(backend: str) -> dict:
    """The device the backend computes on in this process: platform and name."""
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        return {"platform": d.platform, "name": d.device_kind}
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return {"platform": "gpu", "name": torch.cuda.get_device_name(0)}
        return {"platform": "cpu", "name": "cpu"}
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return {"platform": "gpu", "name": gpus[0].name}
    return {"platform": "cpu", "name": "cpu"}


def require_gpu(backend: str) -> None:
    """Raises where `backend` would compute on the CPU (a CPU-only build on a GPU machine)."""
    where = device(backend)
    if where["platform"] != "gpu":
        raise RuntimeError(f"no GPU visible to {backend} in this process (it computes on {where})")


def reset_device_peak(backend: str) -> None:
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def device_peak_mb(backend: str) -> float | None:
    """Peak accelerator memory in MB: torch's since the last `reset_device_peak`, JAX's since
    the process started (lengths run in increasing order, so it is the current length's);
    None on the CPU or where the backend does not report it."""
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return None
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        if d.platform != "gpu":
            return None
        stats = d.memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return round(peak / 2**20, 1) if peak is not None else None
    return None


def installed_backends() -> list[str]:
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def skipped_backends(wanted: list[str] | None = None) -> dict:
    """`{backend: reason}` for the backends that will not run here."""
    wanted = list(BACKENDS) if wanted is None else wanted
    return {
        b: f"{b} is not installed in this Python ({sys.executable})"
        for b in wanted
        if importlib.util.find_spec(b) is None
    }


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


def run_workers(
    script: str,
    jobs: list[tuple[str, list[str]]],
    timeout: float,
    parallel: int = 1,
    on_done: Callable[[int, dict | Exception], None] | None = None,
) -> list[dict | Exception]:
    """Runs `run_worker(script, backend, args)` for each `(backend, args)` job, `parallel` at a
    time, and returns each job's result, or the exception it raised, in job order.

    With `parallel > 1` the workers share one `timing_lock` (a fresh lock file unless the
    environment names one already) and JAX does not preallocate most of the GPU's memory in
    each of them. `on_done(index, result)` is called as each job finishes (in the caller's
    thread order, one at a time), e.g. to write partial results.
    """
    import tempfile
    import threading
    from concurrent.futures import ThreadPoolExecutor

    if parallel < 1:
        raise ValueError(f"parallel must be at least 1. Received: parallel={parallel}")
    results: list[dict | Exception | None] = [None] * len(jobs)
    done = threading.Lock()
    saved = {k: os.environ.get(k) for k in (LOCK_ENV, "XLA_PYTHON_CLIENT_PREALLOCATE")}
    lock_dir = None
    if parallel > 1:
        if not os.environ.get(LOCK_ENV):
            lock_dir = tempfile.mkdtemp(prefix="bench_lock_")
            os.environ[LOCK_ENV] = os.path.join(lock_dir, "timing.lock")
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"

    def job(index: int) -> None:
        backend, args = jobs[index]
        try:
            result: dict | Exception = run_worker(script, backend, args, timeout)
        except Exception as error:  # recorded by the caller; the other jobs still run
            result = error
        with done:
            results[index] = result
            if on_done is not None:
                on_done(index, result)

    try:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            list(pool.map(job, range(len(jobs))))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if lock_dir is not None:
            import shutil

            shutil.rmtree(lock_dir, ignore_errors=True)
    return results  # type: ignore[return-value]


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)  # a failed run leaves the previous file whole
