"""A smoke run of the benchmark scripts at tiny sizes on the active backend: they produce
well-formed results. Nothing here asserts a time (benchmarks are measurements, not tests)."""

import json
import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
BACKEND = keras.config.backend()


def _worker(script, *args):
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    result = subprocess.run(
        [sys.executable, os.path.join(BENCH, script), "--worker", BACKEND, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# One subprocess each (the backend is fixed per process): the two contenders with the most
# code of their own; attention runs in the budget test below.
@pytest.mark.parametrize("contender", ["ours", "handwritten"])
def test_layer_worker(contender):
    out = _worker(
        "bench_layers.py", "--contender", contender, "--lengths", "32", "64", "--repeats", "1"
    )
    assert [row["length"] for row in out["rows"]] == [32, 64]
    for row in out["rows"]:
        assert row["status"] == "ok"
        assert row["forward_ms"] > 0
        assert row["forward_backward_ms"] > 0


@pytest.mark.skipif(BACKEND == "tensorflow", reason="no fused-attention contender for tensorflow")
def test_fused_attention_worker_under_mixed_precision():
    out = _worker(
        "bench_layers.py",
        "--contender",
        "fused_attention",
        "--lengths",
        "32",
        "--repeats",
        "1",
        "--policy",
        "mixed_bfloat16",
    )
    assert out["implementation"]
    assert out["rows"][0]["status"] == "ok"


def test_bench_gpu_skips_without_a_gpu():
    sys.path.insert(0, BENCH)
    import bench_gpu

    if bench_gpu.gpu_name() is not None:
        pytest.skip("a GPU is visible here")
    result = subprocess.run(
        [sys.executable, os.path.join(BENCH, "bench_gpu.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0
    assert "no GPU visible" in result.stdout


def test_layer_worker_records_over_budget_instead_of_dropping():
    out = _worker(
        "bench_layers.py",
        "--contender",
        "attention",
        "--lengths",
        "32",
        "4096",
        "--repeats",
        "1",
        "--memory-budget",
        "0.001",
    )
    assert [row["status"] for row in out["rows"]] == ["ok", "over_budget"]


def test_model_worker():
    out = _worker(
        "bench_models.py", "--vit-layers", "1", "--lengths", "32", "--steps", "1", "--batch", "2"
    )
    mixers = [(row["model"].split()[0], row["mixer"]) for row in out["rows"]]
    assert ("fftnet_vit_tiny_patch16_224", "attention") in mixers
    assert ("FFTNetClassifier", "fnet") in mixers


def test_plot_and_ratio_table(tmp_path):
    pytest.importorskip("matplotlib")
    sys.path.insert(0, BENCH)
    import plot

    rows = [
        {
            "length": n,
            "status": "ok",
            "forward_ms": n / 10,
            "forward_backward_ms": n / 5,
            "peak_rss_growth_mb": n / 100,
        }
        for n in (256, 1024)
    ]
    payload = {
        "machine": {"cpu_count": 2, "cpu": "test"},
        "results": [
            {"backend": BACKEND, "contender": c, "rows": rows} for c in ("ours", "attention")
        ],
    }
    path = tmp_path / "layers-smoke.json"
    path.write_text(json.dumps(payload))
    table = plot.ratio_table(str(path))
    assert "| 1024 |" in table
    assert "1.00x" in table

    models = tmp_path / "models-smoke.json"
    vit = "fftnet_vit_base_patch16_224 (12 blocks)"
    models.write_text(
        json.dumps(
            {
                "results": [
                    {
                        "backend": BACKEND,
                        "rows": [
                            {
                                "model": vit,
                                "mixer": m,
                                "status": "ok",
                                "step_ms": ms,
                                "images_per_s": 64 / ms * 1e3,
                            }
                            for m, ms in (("fftnet", 40.0), ("attention", 50.0))
                        ],
                    }
                ]
            }
        )
    )
    assert "1.25x" in plot.models_table(str(models))
