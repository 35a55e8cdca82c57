"""A smoke run of the benchmark scripts at tiny sizes on the active backend: they produce
well-formed results. Nothing here asserts a time (benchmarks are measurements, not tests)."""

import itertools
import json
import os
import subprocess
import sys

import keras
import pytest

from tests.tolerances import TOLERANCES

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


def test_paired_worker_times_the_three_in_one_process():
    out = _worker("bench_layers.py", "--paired", "--lengths", "32", "--repeats", "2")
    assert out["kind"] == "paired"
    (row,) = out["rows"]
    assert row["status"] == "ok"
    assert row["repeats"] == 2
    for contender in ("ours", "handwritten", "fft_floor"):
        assert row[contender]["forward_ms"] > 0
        assert row[contender]["forward_backward_ms"] > 0


def test_shims_worker_pairs_the_cores_per_op():
    out = _worker("bench_shims.py", "--shapes", "2x64x16", "--heads", "2", "--repeats", "1")
    assert out["backend"] == BACKEND
    ops = {row["op"] for row in out["rows"]}
    assert ops == {"modrelu", "gelu", "fourier_mixing"}
    for row in out["rows"]:
        assert row["shape"] == [2, 64, 16]
        for times in row["times"].values():
            assert times["forward_ms"] > 0
            assert times["forward_backward_ms"] > 0


def test_targets_prefer_the_paired_rows():
    sys.path.insert(0, BENCH)
    import bench_layers

    def rows(ms):
        return [
            {"length": n, "status": "ok", "forward_ms": ms * n, "forward_backward_ms": ms * n}
            for n in (4096, 16384)
        ]

    # Per-contender workers: ours 2x the hand-written; attention 50x ours.
    results = [
        {"backend": "jax", "contender": c, "rows": rows(ms)}
        for c, ms in (("ours", 2.0), ("handwritten", 1.0), ("fft_floor", 1.0), ("attention", 100))
    ]
    paired_row = {"length": 4096, "status": "ok", "repeats": 3}
    paired_row |= {
        "ours": {"forward_ms": 3.0, "forward_backward_ms": 6.0},
        "handwritten": {"forward_ms": 3.0, "forward_backward_ms": 5.0},
        "fft_floor": {"forward_ms": 2.0, "forward_backward_ms": 4.0},
    }
    paired = [{"backend": "jax", "kind": "paired", "rows": [paired_row]}]
    unpaired = bench_layers._targets(results)["jax"]
    assert unpaired["ours_over_handwritten_fwd_bwd_max"] == 2.0
    assert unpaired["source"] == "per-contender workers"
    targets = bench_layers._targets(results, paired)["jax"]
    assert targets["source"] == "paired"
    assert targets["ours_over_handwritten_fwd_bwd_max"] == 1.2  # 6 / 5
    assert targets["ours_over_floor_fwd_max_at_4096_up"] == 1.5  # 3 / 2
    # per-contender rows: one contender's growth, and attention
    assert targets["ours_16384_over_4096_fwd_bwd"] == 4.0
    assert targets["fft_floor_16384_over_4096_fwd_bwd"] == 4.0
    assert targets["attention_over_ours_at_4096"] == 50.0


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


def test_generate_benchmark_times_cached_and_recomputed_tokens(tmp_path):
    """Tiny prefixes; a memory budget that puts attention's full pass at 64 tokens over it and
    prefills its cache in two chunks."""
    out = tmp_path / "generate.json"
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    args = ["--prefixes", "32", "64", "--tokens", "2", "--repeats", "1"]
    args += ["--memory-budget", "0.00015", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, os.path.join(BENCH, "bench_generate.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert payload["backend"] == BACKEND
    rows = {(row["mixer"], row["prefix"]): row for row in payload["rows"]}
    assert sorted(rows) == [("attention", 32), ("attention", 64), ("hyena", 32), ("hyena", 64)]
    for row in rows.values():
        assert row["timed_tokens"] == 2
        assert row["cached_ms_per_token"] > 0
    assert rows[("attention", 64)]["recompute"] == "over_memory"
    assert rows[("attention", 64)]["prefill_chunk"] == 32
    for key in [("attention", 32), ("hyena", 32), ("hyena", 64)]:
        assert rows[key]["recompute"] == "ok"
        assert rows[key]["speedup"] > 0
        # The cache's prompt logits are the full pass's (a smoke check of what is timed).
        assert rows[key]["max_abs_logit_difference"] < TOLERANCES["float32_model"]


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


@pytest.mark.slow
def test_model_worker():
    out = _worker(
        "bench_models.py", "--vit-layers", "1", "--lengths", "32", "--steps", "1", "--batch", "2"
    )
    mixers = [(row["model"].split()[0], row["mixer"]) for row in out["rows"]]
    assert ("fftnet_vit_tiny_patch16_224", "attention") in mixers
    assert ("FFTNetClassifier", "fnet") in mixers


def test_plot_and_ratio_table(tmp_path, monkeypatch):
    sys.path.insert(0, BENCH)
    import plot

    monkeypatch.setattr(plot, "DOCS_IMG", str(tmp_path / "img"))  # not the docs' own figures

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
    # matplotlib (a test dependency) draws the time and memory figures as PNG files.
    written = plot.plot(str(path))
    names = ["layers-smoke-time.png", "layers-smoke-memory.png"]
    assert written == [str(tmp_path / "img" / name) for name in names]
    for figure in written:
        with open(figure, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"

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

    targets = tmp_path / "targets.json"
    measured = {"ours_over_handwritten_fwd_bwd_max": 1.3, "attention_over_ours_at_4096": 12.0}
    targets.write_text(json.dumps({"targets": {BACKEND: {**measured, "source": "paired"}}}))
    table = plot.targets_table(str(targets))
    assert "| ours / hand-written, worst length (≤ 1.15) | 1.3 ✗ |" in table
    assert "| MultiHeadAttention / ours at 4,096 (≥ 10) | 12 ✓ |" in table
    assert f"{BACKEND}: paired" in table


_LOCK_HOLDER = """
import os, sys, time
sys.path.insert(0, {bench!r})
import harness
with harness.timing_lock():
    start = time.time()
    time.sleep(0.3)
    print(start, time.time())
"""


def test_timing_lock_serialises_side_by_side_workers(tmp_path):
    # Four processes started together each hold the lock 0.3 s: their held intervals must
    # not overlap (without the lock they would all overlap).
    env = {**os.environ, "SPECTRALMIX_BENCH_LOCK": str(tmp_path / "lock")}
    code = _LOCK_HOLDER.format(bench=BENCH)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    spans = sorted(tuple(map(float, p.communicate(timeout=60)[0].split())) for p in procs)
    assert len(spans) == 4
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end


def test_run_workers_keeps_job_order_and_records_failures(monkeypatch):
    sys.path.insert(0, BENCH)
    import harness

    seen_lock = []

    def fake_worker(script, backend, args, timeout):
        seen_lock.append(os.environ.get(harness.LOCK_ENV))
        if args == ["fail"]:
            raise RuntimeError("worker failed")
        return {"backend": backend, "args": args}

    monkeypatch.setattr(harness, "run_worker", fake_worker)
    monkeypatch.delenv(harness.LOCK_ENV, raising=False)
    jobs = [("jax", ["a"]), ("torch", ["fail"]), ("tensorflow", ["c"])]
    done = []
    results = harness.run_workers("x.py", jobs, 10, parallel=3, on_done=lambda i, r: done.append(i))
    assert results[0] == {"backend": "jax", "args": ["a"]}
    assert isinstance(results[1], RuntimeError)
    assert results[2] == {"backend": "tensorflow", "args": ["c"]}
    assert sorted(done) == [0, 1, 2]
    assert all(seen_lock)  # side by side, the workers get a lock file
    assert harness.LOCK_ENV not in os.environ  # and the caller's environment is restored
    with pytest.raises(ValueError, match="parallel"):
        harness.run_workers("x.py", jobs, 10, parallel=0)


def _bench_long():
    sys.path.insert(0, BENCH)
    import bench_long

    return bench_long


def test_long_benchmark_quick_run_is_resumable(tmp_path):
    """`bench_long.py --quick` at 64 tokens on the active backend (the bare FFT pair: one
    process); a second run finds the point in the JSON and runs nothing."""
    out = tmp_path / "long.json"
    command = [sys.executable, os.path.join(BENCH, "bench_long.py"), "--quick", "--lengths", "64"]
    command += ["--backends", BACKEND, "--kinds", "floor", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    points = json.loads(out.read_text())["points"]
    (row,) = points.values()
    assert row["status"] == "ok", row
    assert (row["backend"], row["kind"], row["length"]) == (BACKEND, "floor", 64)
    assert row["keras_backend"] == BACKEND  # the worker ran under the point's backend
    assert row["forward_s"] > 0
    assert row["forward_backward_s"] > 0

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert " ..." not in again.stderr  # no point ran again
    assert json.loads(out.read_text())["points"] == points


@pytest.mark.parametrize("kind", ["block", "ratio"])
def test_long_benchmark_worker(kind):
    """The workers' measurements, called here (each point runs in its own process in a run)."""
    bench_long = _bench_long()
    point = {"backend": BACKEND, "kind": kind, "mixer": "fftnet", "length": 64}
    row = bench_long.worker(point, repeats=1)
    assert row["status"] == "ok", row
    if kind == "ratio":
        assert row["mixer_forward_s"] > 0
        assert row["floor_forward_s"] > 0
        assert row["mixer_over_floor"] == pytest.approx(
            row["mixer_forward_s"] / row["floor_forward_s"], rel=0.01, abs=0.01
        )
        return
    assert row["forward_backward_s"] > 0
    assert row["parameters"] > 0
    # Copies of the 16 KiB input; the MB figure is rounded to 0.1 MB (3.2 copies here).
    assert row["peak_copies_of_input"] == pytest.approx(
        row["peak_increase_mb"] * 2**20 / (64 * 64 * 4), abs=3.3
    )
    grid = bench_long.worker({**point, "mixer": "gfnet_2d"}, repeats=1)
    assert grid["status"] == "skipped_grid"


def test_long_benchmark_all_to_all_bytes_by_hand():
    bench_long = _bench_long()
    # 8 tokens, 4 channels, 2 devices: a device holds 4 tokens and sends half of each shard.
    # fftnet: 4 tokens x 4 channels x 4 bytes = 64 bytes, 32 sent, there and back.
    assert bench_long.all_to_all_bytes("fftnet", 8, 4, 2) == {
        "forward": 64,
        "forward_backward": 128,
    }
    # hyena: its 3 x 4 projected channels there (96 bytes sent), 4 back (32).
    assert bench_long.all_to_all_bytes("hyena", 8, 4, 2)["forward"] == 128
    # fnet: 4 complex64 channels there (64 sent), the real part back (32).
    assert bench_long.all_to_all_bytes("fnet", 8, 4, 2)["forward"] == 96
    # 1M tokens, width 768, 8 devices: 402,653,184-byte shards, 7/8 sent, twice forward and
    # twice backward: 1.409 GB; 3.13 ms at 450 GB/s, 112.7 ms at 12.5 GB/s.
    table = bench_long.comm_table(lengths=(2**20,), mixers=("fftnet",))
    assert "| fftnet | 1,048,576 (1M) | 0.70 / 1.41 GB | 3.1 ms | 112.7 ms |" in table


def test_long_benchmark_memory_guard_records_instead_of_running():
    bench_long = _bench_long()
    memory = {"MemTotal": 24e9, "MemAvailable": 20e9}
    attention = {"backend": "jax", "kind": "block", "mixer": "attention", "length": 65536}
    # 3 x 4 heads x 65,536^2 float32 scores: 206 GB.
    assert bench_long.guard(attention, {}, memory)["status"] == "did_not_fit"
    small = {**attention, "length": 1024}
    assert bench_long.guard(small, {}, memory) is None
    need = bench_long.estimate_bytes(small, {})
    tight = {"MemTotal": need * 0.99, "MemAvailable": need * 0.99}
    assert bench_long.guard(small, {}, tight)["status"] == "did_not_fit"
    busy = {"MemTotal": need * 1.5, "MemAvailable": need}  # fits the machine, not the moment
    assert bench_long.guard(small, {}, busy)["status"] == "refused_memory"
    # A measured shorter point scales linearly (x1.2): 4 GB at 256K -> 19.2 GB at 1M.
    fftnet = {"backend": "jax", "kind": "block", "mixer": "fftnet"}
    measured = {"a": {**fftnet, "length": 262144, "status": "ok", "peak_increase_mb": 4096}}
    refused = bench_long.guard({**fftnet, "length": 1048576}, measured, memory)
    assert refused["status"] == "refused_memory"  # over 90% of the 20 GB available, not 24
    assert refused["estimate_gb"] == pytest.approx((1.5e9 + 4 * 2**30 * 4 * 1.2) / 1e9, abs=0.01)


def test_long_benchmark_summary_ratios():
    bench_long = _bench_long()

    def row(kind, mixer, length, **values):
        return {
            "backend": "jax",
            "kind": kind,
            "mixer": mixer,
            "length": length,
            "status": "ok",
        } | values

    rows = [
        row("ratio", "fftnet", 4096, mixer_over_floor=1.5),
        row("ratio", "fftnet", 65536, mixer_over_floor=2.5),
        row("floor", "-", 65536, forward_s=0.1, forward_backward_s=0.2),
        row("floor", "-", 1048576, forward_s=2.0, forward_backward_s=4.0),
        row("block", "fftnet", 65536, forward_backward_s=1.0, peak_copies_of_input=30.0),
        row("block", "fftnet", 1048576, forward_backward_s=40.0, peak_copies_of_input=50.0),
        row("sp", "fftnet", 65536, devices=1, forward_backward_s=1.0, xla_peak_mb=800.0),
        row("sp", "fftnet", 65536, devices=8, forward_backward_s=3.0, xla_peak_mb=200.0),
    ]
    points = {bench_long.point_id(r): r for r in rows}
    s = bench_long.summarise(points)["jax"]
    assert s["mixer_over_floor_forward_max"] == 2.5
    assert s["growth"]["block_fwd_bwd"] == 40.0
    assert s["growth"]["floor_fwd_bwd"] == 20.0
    assert s["growth"]["block_over_floor_fwd_bwd"] == 2.0
    assert s["fftnet_block_copies"] == {"length": 1048576, "copies": 50.0}
    assert s["sp"]["fftnet"][65536] == {
        "devices": 8,
        "per_device_memory_over_one": 0.25,
        "time_over_one": 3.0,
    }
