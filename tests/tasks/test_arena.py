import json
import os

import pytest

from spectralmix.tasks import arena, harness


def _task(length, layers=2, heads=4, batch_size=32):
    return harness.Task(
        name="t",
        load=lambda limit: {},
        build_model=None,
        model_defaults={"num_layers": layers, "num_heads": heads},
        train_defaults={"batch_size": batch_size},
        sequence_length=length,
    )


def test_attention_memory_is_planned_from_the_square_of_the_length():
    # By hand at 4,096 tokens, 2 layers, 4 heads: 2 * (4 * 4096² * 4 * 3 + 4096²) bytes
    # = 1,644,167,168 per example; half of 16 GiB holds 5 of them, so 32 splits into 8 x 4.
    assert arena.attention_bytes_per_example(4096, 2, 4) == 1_644_167_168
    assert arena.plan_accumulation(_task(4096), "attention", 32, 16 * 2**30) == 8
    assert arena.plan_accumulation(_task(1024), "attention", 32, 16 * 2**30) == 1
    # Beyond the memory even one example at a time: one a step, and the run measures it.
    assert arena.plan_accumulation(_task(16384), "attention", 32, 16 * 2**30) == 32
    for model in ("fftnet", "fnet"):
        assert arena.plan_accumulation(_task(16384), model, 32, 2**30) == 1


def _cell(**changes):
    cell = {
        "status": "done",
        "task": "image",
        "model": "fftnet",
        "sequence_length": 1024,
        "test_accuracy": 0.75,
        "test_ci95": [0.7, 0.8],
        "test_examples": 2000,
        "val_accuracy": 0.76,
        "parameters": 195778,
        "updates": 711,
        "steps": 711,
        "micro_batch": 32,
        "train_cpu_seconds": 251.2,
        "train_seconds": 259.0,
    }
    return {**cell, **changes}


def test_table_fills_every_cell_or_says_why():
    oom = {
        "status": "out_of_memory",
        "task": "pathx",
        "model": "attention",
        "sequence_length": 16384,
        "micro_batch": 1,
        "memory_limit_gib": 17.6,
        "error": "MemoryError",
    }
    rows = arena.table([_cell(), oom]).splitlines()
    assert len(rows) == 4
    assert "| image | fftnet | 1,024 | 0.7500 [0.7000, 0.8000] (n=2,000) | 0.7600 |" in rows[2]
    assert "| 711 (711) | 32 | 251 | 259 |" in rows[2]
    assert "out of memory at 16,384 tokens, measured (1 example(s) a step, 17.6 GiB" in rows[3]
    assert rows[3].count("|") == rows[2].count("|")


def test_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = arena.plot([_cell(), _cell(model="fnet", test_accuracy=0.7)], str(tmp_path / "a.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["a.png"]


def test_run_trains_each_pair_in_its_own_process_and_reuses_finished_ones(tmp_path, monkeypatch):
    out = tmp_path / "arena"
    printed = []
    paths = arena.run(
        ["pathfinder"], ["fftnet"], out, cpu_budget=1e-3, limit=8, verbose=0, emit=printed.append
    )
    with open(paths["results"]) as f:
        results = json.load(f)
    (cell,) = results["cells"]
    assert printed == [cell]
    assert cell["status"] == "done", cell
    assert cell["stopped_by_budget"] is True
    with open(out / "pathfinder" / "fftnet" / "metrics.json") as f:
        assert {k: cell[k] for k in ("test_correct", "steps")} == {
            k: v for k, v in json.load(f).items() if k in ("test_correct", "steps")
        }
    assert "| pathfinder | fftnet | 1,024 |" in (out / "results.md").read_text()

    def no_process(*args, **kwargs):
        raise AssertionError("a finished pair was trained again")

    monkeypatch.setattr(arena.multiprocessing, "get_context", no_process)
    again = arena.run(["pathfinder"], ["fftnet"], out, cpu_budget=1e-3, limit=8, verbose=0)
    with open(again["results"]) as f:
        assert json.load(f)["cells"] == [cell]


def test_a_pair_that_fails_is_recorded_not_dropped(tmp_path):
    # 0.2 GiB of address space is too little for the framework to start: the child fails,
    # and its failure is the pair's result.
    paths = arena.run(
        ["pathfinder"], ["fftnet"], tmp_path, cpu_budget=1, memory_limit_gib=0.2, limit=4
    )
    with open(paths["results"]) as f:
        (cell,) = json.load(f)["cells"]
    assert cell["status"] in ("out_of_memory", "failed")
    assert cell["error"]
    assert os.path.isfile(tmp_path / "pathfinder" / "fftnet" / "failure.json")
    row = arena.table([cell]).splitlines()[2]
    assert "out of memory" in row or "failed" in row


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tasks": ["cifar"]}, "cifar"),
        ({"models": ["lstm"]}, "lstm"),
        ({"cpu_budget": -1}, "cpu_budget=-1"),
        ({"data": {"imdb": "x"}}, "imdb"),
    ],
)
def test_bad_arguments_name_the_value(tmp_path, kwargs, message):
    arguments = {"tasks": ["pathfinder"], "models": ["fftnet"], "cpu_budget": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        arena.run(out=tmp_path, **arguments)


def test_out_must_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="a file"):
        arena.run(["pathfinder"], ["fftnet"], tmp_path / "file", cpu_budget=1)


def test_missing_listops_files_say_how_to_make_them(monkeypatch):
    monkeypatch.delenv("SPECTRALMIX_LISTOPS_DIR", raising=False)
    with pytest.raises(ValueError, match="spectralmix data listops --out DIR"):
        arena.make_task("listops")


def test_listops_is_scored_on_the_first_examples_of_val_and_test(tiny_listops_dir, monkeypatch):
    monkeypatch.setitem(arena.LISTOPS_EVALUATION, "val", 5)
    monkeypatch.setitem(arena.LISTOPS_EVALUATION, "test", 7)
    task = arena.make_task("listops", data=tiny_listops_dir)
    splits = task.load(None)
    assert [len(splits[s].labels) for s in ("train", "val", "test")] == [160, 5, 7]
    assert task.source["first"] == {"val": 5, "test": 7}
