"""GPU benchmarks: the layer table under mixed_bfloat16 and FFTNetViT-base against its
attention baseline at 224 (training throughput). Sized to finish in a few minutes on one H100.

With no GPU visible to torch or JAX it prints why and exits 0 (a skip, not a failure).
`nox -s bench_gpu` runs it in the machine's own Python (`venv_backend="none"`).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def gpu_name() -> str | None:
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


def main() -> int:
    name = gpu_name()
    if name is None:
        print("bench_gpu: no GPU visible to torch or jax here; skipping the GPU benchmarks.")
        return 0
    print(f"bench_gpu: running on {name}", flush=True)
    results = os.path.join(HERE, "results")
    commands = [
        [
            sys.executable,
            os.path.join(HERE, "bench_layers.py"),
            "--policy",
            "mixed_bfloat16",
            "--lengths",
            "1024",
            "4096",
            "16384",
            "65536",
            "--repeats",
            "10",
            "--out",
            os.path.join(results, "layers-gpu.json"),
        ],
        [
            sys.executable,
            os.path.join(HERE, "bench_models.py"),
            "--policy",
            "mixed_bfloat16",
            "--vit-preset",
            "fftnet_vit_base_patch16_224",
            "--vit-layers",
            "12",
            "--batch",
            "64",
            "--lengths",
            "2000",
            "--out",
            os.path.join(results, "models-gpu.json"),
        ],
    ]
    for command in commands:
        subprocess.run(command, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
