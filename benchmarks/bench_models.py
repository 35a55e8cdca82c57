"""Model-level training throughput: FFTNet against its attention (and FNet) baselines.

- FFTNetViT vs the same ViT with attention (images/s per training step);
- FFTNetClassifier vs attention and FNet at ListOps lengths (tokens/s per training step).

Each model trains with `train_on_batch` (compiled as Keras compiles it: XLA on jax,
`tf.function` on tensorflow, eager torch); the figure is the median step after warm-up steps.
A model that fails (out of memory, say) is recorded with its error; `--expect-gpu` makes a
worker whose framework computes on the CPU fail instead of timing the CPU; `--lengths` with
no value skips the sequence models. `python benchmarks/bench_models.py` writes
`benchmarks/results/models-cpu.json`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

import numpy as np

from spectralmix.registry import token_mixer_names

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness

HERE = os.path.dirname(os.path.abspath(__file__))


def _vit(token_mixer: str, args):
    from spectralmix.models import FFTNetViTImageClassifier

    model = FFTNetViTImageClassifier.from_preset(
        args.vit_preset,
        token_mixer=token_mixer,
        num_layers=args.vit_layers,
        num_classes=1000,
        dtype=args.policy,
    )
    size = model.backbone.image_size
    x = np.random.default_rng(0).standard_normal((args.batch, size, size, 3)).astype("float32")
    return model, x, np.arange(args.batch) % 1000, args.batch


def _sequence(token_mixer: str, length: int, args):
    from spectralmix.models import FFTNetBackbone, FFTNetClassifier

    backbone = FFTNetBackbone(
        vocabulary_size=20,
        max_sequence_length=length,
        hidden_dim=128,
        num_layers=4,
        num_heads=8,
        token_mixer=token_mixer,
        class_token=True,
        dtype=args.policy,
    )
    model = FFTNetClassifier(backbone=backbone, num_classes=10, dtype=args.policy)
    ids = np.random.default_rng(0).integers(1, 20, (args.batch, length))
    return model, ids, np.arange(args.batch) % 10, args.batch * length


def _step_ms(model, x, y, steps: int) -> float:
    import keras

    model.compile(
        keras.optimizers.AdamW(1e-4), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    # Keras compiles in the first step, which runs on the device too: under the timing lock.
    with harness.timing_lock():
        return harness.median_ms(lambda: model.train_on_batch(x, y), steps, warmup=2)


def _row(model_name: str, mixer: str, build, unit: str, steps: int) -> dict:
    row = {"model": model_name, "mixer": mixer}
    try:
        model, x, y, count = build()
        ms = _step_ms(model, x, y, steps)
    except Exception as error:  # recorded (out of memory, say), not fatal
        return row | {"status": "error", "error": str(error)[:500]}
    finally:
        gc.collect()
    return row | {"status": "ok", "step_ms": ms, unit: count / ms * 1e3}


def _measure(backend: str, args) -> dict:
    if args.expect_gpu:
        harness.require_gpu(backend)
    import keras

    rows = []
    for mixer in args.vit_mixers:
        rows.append(
            _row(
                f"{args.vit_preset} ({args.vit_layers} blocks)",
                mixer,
                lambda mixer=mixer: _vit(mixer, args),
                "images_per_s",
                args.steps,
            )
        )
        keras.backend.clear_session()
    for length in args.lengths:
        for mixer in args.mixers:
            rows.append(
                _row(
                    f"FFTNetClassifier L={length}",
                    mixer,
                    lambda mixer=mixer, length=length: _sequence(mixer, length, args),
                    "tokens_per_s",
                    args.steps,
                )
            )
            keras.backend.clear_session()
    return {
        "backend": backend,
        "policy": args.policy,
        "device": harness.device(backend),
        "versions": harness.versions(backend),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=harness.BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--vit-preset", default="fftnet_vit_tiny_patch16_224")
    parser.add_argument(
        "--mixers",
        nargs="+",
        choices=token_mixer_names(),
        default=list(token_mixer_names()),
        help="token mixers of the sequence models (default: every registered one)",
    )
    parser.add_argument(
        "--vit-mixers",
        nargs="+",
        choices=token_mixer_names(),
        default=list(token_mixer_names()),
        help="token mixers of the ViT (default: every registered one)",
    )
    parser.add_argument("--vit-layers", type=int, default=4)
    parser.add_argument("--lengths", type=int, nargs="*", default=[1000, 2000])
    parser.add_argument("--policy", default="float32")
    parser.add_argument("--backends", nargs="+", choices=harness.BACKENDS, default=None)
    parser.add_argument("--expect-gpu", action="store_true")
    parser.add_argument("--worker-timeout", type=float, default=3600)
    parser.add_argument(
        "--parallel", type=int, default=1, help="backends at a time (see bench_layers.py)"
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results", "models-cpu.json"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_measure(args.worker, args)))
        return
    passthrough = [
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--vit-preset",
        args.vit_preset,
        "--vit-layers",
        str(args.vit_layers),
        "--policy",
        args.policy,
        "--mixers",
        *args.mixers,
        "--vit-mixers",
        *args.vit_mixers,
        "--lengths",
        *map(str, args.lengths),
    ]
    if args.expect_gpu:
        passthrough.append("--expect-gpu")
    wanted = args.backends or list(harness.BACKENDS)
    skipped = harness.skipped_backends(wanted)
    config = vars(args) | {"worker": None}
    backends = [b for b in wanted if b not in skipped]
    finished: dict[int, dict] = {}

    def record(index: int, result) -> None:
        print(f"{time.strftime('%H:%M:%S')} {backends[index]} done", file=sys.stderr, flush=True)
        if isinstance(result, Exception):  # recorded; the other backends still run
            print(str(result)[-2000:], file=sys.stderr, flush=True)
            result = {"backend": backends[index], "error": str(result)[-2000:]}
        finished[index] = result
        harness.write_json(
            args.out,
            {
                "machine": harness.machine(),
                "config": config,
                "complete": False,
                "skipped": skipped,
                "results": [finished[i] for i in sorted(finished)],
            },
        )

    jobs = [(backend, passthrough) for backend in backends]
    harness.run_workers(__file__, jobs, args.worker_timeout, args.parallel, on_done=record)
    results = [finished[i] for i in sorted(finished)]
    harness.write_json(
        args.out,
        {
            "machine": harness.machine(),
            "config": config,
            "complete": True,
            "skipped": skipped,
            "results": results,
        },
    )
    for result in results:
        for row in result.get("rows", []):
            if row["status"] != "ok":
                print(f"{result['backend']:<11} {row['model']:<45} {row['mixer']:<10} error")
                continue
            rate = row.get("images_per_s") or row.get("tokens_per_s")
            unit = "images/s" if "images_per_s" in row else "tokens/s"
            print(
                f"{result['backend']:<11} {row['model']:<45} {row['mixer']:<10} "
                f"{row['step_ms']:9.1f} ms/step {rate:10.1f} {unit}"
            )


if __name__ == "__main__":
    main()
