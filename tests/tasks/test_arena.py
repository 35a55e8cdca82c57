import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from spectralmix.layers import SelfAttention
from spectralmix.tasks import arena, harness, listops
from spectralmix.tasks.registry import make_task, register_task, unregister_task
from tests.helpers import registered_mixers


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
    assert 2 * SelfAttention.training_bytes_per_example(4096, 4) == 1_644_167_168
    assert arena.plan_accumulation(_task(4096), "attention", 32, 16 * 2**30) == 8
    assert arena.plan_accumulation(_task(1024), "attention", 32, 16 * 2**30) == 1
    # Beyond the memory even one example at a time: one a step, and the run measures it.
    assert arena.plan_accumulation(_task(16384), "attention", 32, 16 * 2**30) == 32
    for model in ("fftnet", "fnet"):
        assert arena.plan_accumulation(_task(16384), model, 32, 2**30) == 1


class _Quadratic(keras.layers.Layer):
    """A toy mixer that declares a memory estimate: 1 MiB per token² and head."""

    @staticmethod
    def training_bytes_per_example(length, num_heads):
        return num_heads * length * length * 2**20

    def call(self, inputs, mask=None, training=None):
        return inputs


class _Linear(keras.layers.Layer):
    """A toy mixer that declares none: its memory is taken as linear in the length."""

    def call(self, inputs, mask=None, training=None):
        return inputs


@pytest.fixture
def toy_mixers():
    with registered_mixers(
        {"toy_arena_quadratic": _Quadratic, "toy_arena_linear": _Linear}
    ) as names:
        yield names


def test_accumulation_is_planned_from_the_mixers_own_estimate(toy_mixers):
    quadratic, linear = toy_mixers
    # 2 layers x 4 heads x 16² MiB = 2 GiB an example; half of 16 GiB holds 4: 32 = 8 x 4.
    assert arena.plan_accumulation(_task(16), quadratic, 32, 16 * 2**30) == 8
    assert arena.plan_accumulation(_task(8), quadratic, 32, 16 * 2**30) == 2
    assert arena.plan_accumulation(_task(1024), quadratic, 32, 16 * 2**30) == 32
    assert arena.plan_accumulation(_task(16384), linear, 32, 2**30) == 1


def test_plugin_modules_name_what_is_registered_outside_spectralmix(toy_mixers):
    quadratic, _ = toy_mixers
    assert arena.plugin_modules("pathfinder", "fftnet") == []
    assert arena.plugin_modules("pathfinder", quadratic) == [__name__]

    @register_task("toy_arena_task")
    def make(data=None, *, seed=0, test_examples=None):
        raise AssertionError("not made here")

    try:
        assert arena.plugin_modules("toy_arena_task", "attention") == [__name__]
        assert arena.plugin_modules("toy_arena_task", quadratic) == [__name__]
    finally:
        unregister_task("toy_arena_task")


def test_run_hands_each_child_its_plugin_modules_and_data(toy_mixers, tmp_path, monkeypatch):
    quadratic, linear = toy_mixers
    specs = []

    def run_cell(spec, task):
        specs.append(spec)
        return _cell(sequence_length=task.sequence_length)

    monkeypatch.setattr(arena, "_run_cell", run_cell)
    data = {"pathfinder": str(tmp_path / "no_files_read_here")}
    paths = arena.run(
        ["pathx", "pathfinder"], ["fnet", quadratic, linear], tmp_path / "a", cpu_budget=1,
        data=data, memory_limit_gib=16, test_examples=9, verbose=0,
    )  # fmt: skip
    assert [(s["task"], s["train_options"]["model"]) for s in specs] == [
        (task, model) for task in ("pathx", "pathfinder") for model in ("fnet", *toy_mixers)
    ]
    for spec in specs:
        toy = spec["train_options"]["model"] != "fnet"
        assert spec["modules"] == ([__name__] if toy else [])
        # Both tasks read the one data set by its registered name.
        assert spec["task_options"] == {"data": data["pathfinder"], "seed": 0, "test_examples": 9}
        assert spec["run_dir"] == os.path.join(
            tmp_path, "a", spec["task"], spec["train_options"]["model"]
        )
    # Planned from the toy's estimate at Path-X's 16,384 tokens: one example a step.
    assert [s["train_options"]["accumulate"] for s in specs[:3]] == [1, 32, 1]
    with open(paths["results"]) as f:
        assert [(c["task"], c["model"]) for c in json.load(f)["cells"]] == [
            (s["task"], s["train_options"]["model"]) for s in specs
        ]


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


def _oom_cell():
    return {
        "status": "out_of_memory",
        "task": "pathx",
        "model": "attention",
        "sequence_length": 16384,
        "micro_batch": 1,
        "memory_limit_gib": 17.6,
        "error": "MemoryError",
    }


def test_table_fills_every_cell_or_says_why():
    oom = _oom_cell()
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


def test_plot_cycles_colours_and_markers_beyond_the_built_ins(tmp_path):
    # A 4th mixer and a 7th task (registered ones): more than the built-ins, no crash.
    pytest.importorskip("matplotlib")
    cells = [
        _cell(task=f"task_{t}", model=f"mixer_{m}", train_cpu_seconds=10.0 * (t + 1) + m)
        for t in range(7)
        for m in range(4)
    ]
    cells.append({**cells[0], "status": "failed", "task": "task_7", "model": "mixer_4"})
    path = arena.plot(cells, str(tmp_path / "many.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["many.png"]


def test_plot_of_pairs_that_all_failed_is_an_empty_figure(tmp_path):
    # Nothing to plot and nothing in the legend: still a figure, and no warning.
    pytest.importorskip("matplotlib")
    failed = {**_cell(), "status": "failed", "error": "RuntimeError: boom"}
    path = arena.plot([failed], str(tmp_path / "none.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_names_the_extra_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert arena.plot([_cell()], str(tmp_path / "a.png")) is None
    message = capsys.readouterr().err
    assert message.count("\n") == 1
    assert "spectralmix[plot]" in message
    assert "a.png" in message


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
    assert 0 <= cell["busy_cores_before"] <= os.cpu_count()  # the machine, measured before
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
    # Not reused under another budget: it would be reported as a run it was not.
    with pytest.raises(ValueError, match="other arguments"):
        arena.run(["pathfinder"], ["fftnet"], out, cpu_budget=2e-3, limit=8, verbose=0)


class _ExitedProcess:
    """Stands for a pair's child process that ends at once with `exitcode`."""

    def __init__(self, exitcode):
        self.exitcode = exitcode

    def __call__(self, *args, **kwargs):  # the context's Process(...)
        return self

    def start(self):
        pass

    def join(self):
        pass


@pytest.mark.parametrize("exitcode", [arena.INTERRUPTED, -2, -15])
def test_an_interrupted_pair_is_not_recorded_as_failed(tmp_path, monkeypatch, exitcode):
    monkeypatch.setattr(arena, "busy_cores", lambda: 0.0)
    process = _ExitedProcess(exitcode)
    context = type("Context", (), {"Process": process})
    monkeypatch.setattr(arena.multiprocessing, "get_context", lambda method: context)
    with pytest.raises(KeyboardInterrupt, match="run the same command again"):
        arena.run(["pathfinder"], ["fftnet"], tmp_path, cpu_budget=1, limit=4, verbose=0)
    assert not os.path.exists(tmp_path / "pathfinder" / "fftnet" / "failure.json")


def test_the_child_exits_as_interrupted_on_ctrl_c_and_records_other_failures(tmp_path, monkeypatch):
    spec = {
        "task": "pathfinder",
        "task_options": {},
        "modules": [],
        "run_dir": str(tmp_path),
        "train_options": {"model": "fftnet", "cpu_budget": 1, "verbose": 0},
    }

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(arena, "make_task", interrupted)
    with pytest.raises(SystemExit) as exited:
        arena._train_pair(spec)
    assert exited.value.code == arena.INTERRUPTED
    assert not os.path.exists(tmp_path / "failure.json")

    def broken(*args, **kwargs):
        raise ValueError("no such data")

    monkeypatch.setattr(arena, "make_task", broken)
    with pytest.raises(ValueError, match="no such data"):
        arena._train_pair(spec)
    with open(tmp_path / "failure.json") as f:
        failure = json.load(f)
    assert failure["error"] == "ValueError: no such data"
    assert failure["train_options"] == {"model": "fftnet", "cpu_budget": 1}


def test_a_pair_whose_tuning_trials_all_fail_is_recorded_and_the_arena_goes_on(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(arena, "TUNING_GRID", {"learning_rate": (1e-3,), "hidden_dim": (8, 16)})
    ran = []

    def run_cell(spec, task):
        ran.append((spec["train_options"]["model"], spec["train_options"].get("read_test")))
        if spec["train_options"]["model"] == "attention":
            return {"status": "out_of_memory", "error": "Out of memory"}
        return _cell(task="pathfinder", model="fnet", val_accuracy=0.5)

    monkeypatch.setattr(arena, "_run_cell", run_cell)
    paths = arena.run(
        ["pathfinder"], ["attention", "fnet"], tmp_path, cpu_budget=1, tune=True, verbose=0
    )
    with open(paths["results"]) as f:
        first, second = json.load(f)["cells"]
    assert first["status"] == "out_of_memory"
    assert "every tuning trial failed" in first["error"]
    assert first["tuning"]["chosen"] is None
    assert [t["status"] for t in first["tuning"]["trials"]] == ["out_of_memory"] * 2
    # The attention pair's final run was not attempted; FNet's tuning and run were.
    assert ran == [("attention", False)] * 2 + [("fnet", False)] * 2 + [("fnet", None)]
    assert second["status"] == "done"


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
    # The failure stands for those options only.
    with pytest.raises(ValueError, match="failed pair run with other options"):
        arena.run(["pathfinder"], ["fftnet"], tmp_path, cpu_budget=2, memory_limit_gib=0.2, limit=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tasks": ["cifar"]}, "cifar"),
        ({"models": ["lstm"]}, "lstm"),
        ({"cpu_budget": -1}, "cpu_budget=-1"),
        ({"data": {"imdb": "x"}}, "imdb"),
        ({"seeds": [0, -1]}, "seeds=-1"),
        ({"seed": -2}, "seed=-2"),
        ({"test_examples": 0}, "test_examples=0"),
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
        make_task("listops")
    with pytest.raises(ValueError, match="--data listops=DIR"):
        make_task("listops")


def test_listops_is_scored_on_the_first_examples_of_val_and_test(tiny_listops_dir, monkeypatch):
    monkeypatch.setitem(listops.ARENA_EVALUATION, "val", 5)
    task = make_task("listops", data=tiny_listops_dir, test_examples=7)
    splits = task.load(None)
    assert [len(splits[s].labels) for s in ("train", "val", "test")] == [160, 5, 7]
    assert task.source["first"] == {"val": 5, "test": 7}
    # Without test_examples: the task's registered cap, ARENA_EVALUATION's.
    default = make_task("listops", data=tiny_listops_dir)
    assert default.source["first"] == {"val": 5, "test": listops.ARENA_EVALUATION["test"]}
    splits = default.load(None)
    assert [len(splits[s].labels) for s in ("train", "val", "test")] == [160, 5, 48]


def test_listops_reads_its_directory_from_the_environment(tiny_listops_dir, monkeypatch):
    monkeypatch.setenv("SPECTRALMIX_LISTOPS_DIR", tiny_listops_dir)
    task = make_task("listops")
    assert len(task.load(4)["train"].labels) == 4


def _lm_cell(**changes):
    cell = {
        **_cell(task="lm", model="attention"),
        "metric": "bits_per_byte",
        "test_bits_per_byte": 2.4567,
        "test_ci95": [2.4012, 2.5101],
        "test_bytes": 599778,
        "test_examples": 50,
        "val_bits_per_byte": 2.4321,
        "data": {
            "test_reference_bits_per_byte": {
                "gzip": {"per_document": 3.4528, "concatenated": 3.0857},
                "xz": {"per_document": 3.4101, "concatenated": 2.646},
            }
        },
    }
    for key in ("test_accuracy", "val_accuracy"):
        del cell[key]
    return {**cell, **changes}


def test_bits_per_byte_pairs_get_a_table_of_their_own_beside_the_compressors():
    refused = {
        "status": "not_entered",
        "task": "lm",
        "model": "fftnet",
        "sequence_length": 1024,
        "metric": "bits_per_byte",
        "reason": (
            "Token mixer 'fftnet' is not causal, so it cannot model language; causal mixers: "
            "['attention', 'hyena']. Received: model='fftnet'"
        ),
    }
    text = arena.table([_cell(), _lm_cell(), refused])
    accuracy, bits = text.split("\n\n")
    assert "| image | fftnet | 1,024 | 0.7500 [0.7000, 0.8000] (n=2,000) | 0.7600 |" in accuracy
    assert "lm" not in accuracy
    rows = bits.splitlines()
    assert "test bits per byte [95% CI]" in rows[0]
    assert "gzip -9 (concat.) | xz -9e (concat.)" in rows[0]
    assert rows[2] == (
        "| lm | attention | 1,024 | 2.4567 [2.4012, 2.5101] (n=50 documents, 599,778 bytes) "
        "| 2.4321 | 3.4528 (3.0857) | 3.4101 (2.6460) | 195,778 | 711 (711) | 32 | 251 | 259 |"
    )
    # The table gives the reason's first clause whole (results.json keeps all of it).
    assert rows[3].startswith(
        "| lm | fftnet | 1,024 | not entered: Token mixer 'fftnet' is not causal, so it cannot "
        "model language |"
    )
    assert rows[0].count("|") == rows[1].count("|") == rows[2].count("|") == rows[3].count("|")
    # Without accuracy pairs, only the bits-per-byte table.
    assert arena.table([_lm_cell()]).startswith("| task | model | context | test bits per byte")


def test_plot_draws_bits_per_byte_in_a_panel_of_its_own(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    figures = []
    original = plt.subplots

    def subplots(*args, **kwargs):
        figure, grid = original(*args, **kwargs)
        figures.append(grid)
        return figure, grid

    plt.subplots, saved = subplots, plt.subplots
    try:
        arena.plot([_cell(), _lm_cell()], str(tmp_path / "both.png"))
        arena.plot([_lm_cell()], str(tmp_path / "lm.png"))
        arena.plot([_cell()], str(tmp_path / "accuracy.png"))
    finally:
        plt.subplots = saved
    assert [grid.shape for grid in figures] == [(1, 2), (1, 1), (1, 1)]
    both, lm_only, _ = figures
    assert both[0, 1].get_ylabel() == "test bits per byte (lower is better)"
    assert lm_only[0, 0].get_ylabel() == "test bits per byte (lower is better)"
    # gzip's and xz's references as horizontal lines at their bits per byte.
    styles = {
        line.get_linestyle(): line.get_ydata()[0]
        for line in lm_only[0, 0].get_lines()
        if line.get_linestyle() in ("--", ":")
    }
    assert styles == {"--": 3.4528, ":": 3.4101}  # gzip dashed, xz dotted
    for name in ("both.png", "lm.png", "accuracy.png"):
        with open(tmp_path / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_query_accuracy_pairs_get_a_table_and_a_panel_of_their_own(tmp_path):
    recall = {
        **_cell(task="recall", model="hyena"),
        "metric": "query_accuracy",
        "test_query_accuracy": 0.5312,
        "test_ci95": [0.5001, 0.5598],
        "val_query_accuracy": 0.5401,
        "test_queries": 16000,
        "test_examples": 1000,
    }
    for key in ("test_accuracy", "val_accuracy"):
        del recall[key]
    text = arena.table([_cell(), recall])
    tables = text.split("\n\n")
    assert len(tables) == 2
    assert "test query accuracy" in tables[1].splitlines()[0]
    row = tables[1].splitlines()[2]
    assert "| recall | hyena | 1,024 | 0.5312 [0.5001, 0.5598]" in row
    assert "n=1,000 sequences, 16,000 queries" in row
    assert "0.5401" in row
    assert "recall" not in tables[0]
    pytest.importorskip("matplotlib")
    path = arena.plot([_cell(), recall], str(tmp_path / "queries.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_busy_cores_sees_a_busy_process():
    if arena.busy_cores(0.1) is None:
        pytest.skip("no /proc/stat")
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = arena.busy_cores(1.0)
    finally:
        spin.kill()
        spin.wait()
    assert 0.8 <= busy <= os.cpu_count()


def test_a_busy_machine_gets_a_one_line_warning_before_a_pair(monkeypatch, capsys):
    monkeypatch.setattr(arena, "busy_cores", lambda: 1.6)
    assert arena._check_quiet("text", "fftnet") == 1.6
    message = capsys.readouterr().err
    assert message.count("\n") == 1
    assert "1.6 cores busy" in message
    assert "text/fftnet" in message
    monkeypatch.setattr(arena, "busy_cores", lambda: 0.1)
    arena._check_quiet("text", "fftnet")
    assert capsys.readouterr().err == ""


def test_a_pair_capped_before_its_updates_says_how_far_it_got():
    capped = _cell(updates=612, steps=612, arguments={"updates": 1000})
    reached = _cell(model="fnet", updates=1000, steps=1000, arguments={"updates": 1000})
    rows = arena.table([capped, reached]).splitlines()
    assert "| 612 of 1,000 (612) |" in rows[2]
    assert "| 1,000 (1,000) |" in rows[3]


def test_run_needs_a_budget_of_cpu_or_updates(tmp_path):
    with pytest.raises(ValueError, match="cpu_budget, updates or both"):
        arena.run(["pathfinder"], ["fftnet"], tmp_path / "a")
    with pytest.raises(ValueError, match="updates=0"):
        arena.run(["pathfinder"], ["fftnet"], tmp_path / "a", updates=0)


def test_t_quantile_and_seed_summary_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 5, 30, 31, 50, 200):
        assert abs(arena.t_quantile_975(df) - stats.t.ppf(0.975, df)) < 1e-3
    values = [0.61, 0.64, 0.70, 0.66]
    summary = arena.seed_summary(values)
    low, high = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert abs(summary["mean"] - np.mean(values)) < 1e-12
    assert abs(summary["sd"] - np.std(values, ddof=1)) < 1e-12
    assert abs(summary["low"] - low) < 1e-3
    assert abs(summary["high"] - high) < 1e-3
    with pytest.raises(ValueError, match="two seeds"):
        arena.seed_summary([0.5])


def test_runs_of_several_seeds_get_a_table_across_seeds():
    runs = [
        _cell(seed=s, test_accuracy=a, updates=u, train_cpu_seconds=c)
        for s, a, u, c in ((0, 0.70, 700, 240.0), (1, 0.72, 710, 250.0), (2, 0.74, 720, 260.0))
    ]
    lonely = _cell(model="fnet", seed=0)
    text = arena.table([*runs, lonely])
    assert "| image | fftnet (seed 1) | 1,024 | 0.7200" in text
    across = text.split("\n\n")[-1].splitlines()
    assert across[0].startswith("| task | model | metric | tokens | seeds | test mean ± sd")
    assert len(across) == 3  # fnet has one seed: no row
    assert across[2] == (
        "| image | fftnet | accuracy | 1,024 | 3 (0, 1, 2) | 0.7200 ± 0.0200 "
        "| [0.6703, 0.7697] | 710 | 250 |"
    )


@pytest.mark.slow
def test_run_with_seeds_trains_each_pair_once_per_seed(tmp_path):
    out = tmp_path / "arena"
    paths = arena.run(
        ["pathfinder"], ["fnet"], out, cpu_budget=1e-3, limit=8, verbose=0, seeds=[0, 1]
    )
    with open(paths["results"]) as f:
        cells = json.load(f)["cells"]
    assert [c["seed"] for c in cells] == [0, 1]
    assert [c["arguments"]["seed"] for c in cells] == [0, 1]
    for s in (0, 1):
        assert os.path.isfile(out / "pathfinder" / "fnet" / f"seed-{s}" / "metrics.json")
    assert "| pathfinder | fnet | accuracy |" in (out / "results.md").read_text()
    with pytest.raises(ValueError, match="distinct"):
        arena.run(["pathfinder"], ["fnet"], out, cpu_budget=1.0, seeds=[1, 1])


@pytest.mark.slow
def test_tune_tries_the_grid_on_validation_and_runs_the_best(tmp_path, monkeypatch):
    monkeypatch.setattr(arena, "TUNING_GRID", {"learning_rate": (1e-3, 3e-3), "hidden_dim": (8,)})
    out = tmp_path / "arena"
    paths = arena.run(["pathfinder"], ["fnet"], out, cpu_budget=1e-3, limit=8, verbose=0, tune=True)
    with open(paths["results"]) as f:
        (cell,) = json.load(f)["cells"]
    tuning = cell["tuning"]
    assert [t["learning_rate"] for t in tuning["trials"]] == [1e-3, 3e-3]
    best = max(tuning["trials"], key=lambda t: t["val_accuracy"])
    assert tuning["chosen"] == {
        "learning_rate": best["learning_rate"],
        "model_options": {"hidden_dim": 8},
    }
    assert cell["arguments"]["learning_rate"] == best["learning_rate"]
    assert cell["arguments"]["model_options"]["hidden_dim"] == 8
    for trial in ("lr=0.001,hidden_dim=8", "lr=0.003,hidden_dim=8"):
        with open(out / "pathfinder" / "fnet" / "tune" / trial / "metrics.json") as f:
            assert json.load(f)["test_read"] is False


def _record(cells, cpu_budget=240.0, updates=None):
    return {"backend": "jax", "cpu_budget": cpu_budget, "updates": updates, "cells": cells}


def test_glance_joins_runs_into_tasks_by_mixers_with_seeds_views_and_backends():
    cpu = [
        _cell(task="text", model="fnet", seed=s, test_accuracy=a, updates=u, backend="jax")
        for s, a, u in ((0, 0.90, 400), (1, 0.94, 404), (2, 0.92, 402))
    ]
    cpu.append(_cell(task="text", model="fftnet", seed=0, test_accuracy=0.8, backend="jax"))
    capped = [
        _cell(task="text", model="attention", seed=s, backend="torch", updates=u,
              train_cpu_seconds=480.0, arguments={"updates": 300})
        for s, u in ((0, 20), (1, 22))
    ]  # fmt: skip
    equal = [
        _cell(task="text", model="fnet", seed=0, backend="jax", updates=300,
              train_cpu_seconds=180.0, arguments={"updates": 300})
    ]  # fmt: skip
    oom = _oom_cell()
    text = arena.glance(
        [
            _record([*cpu, oom]),
            _record(capped, cpu_budget=480.0, updates=300),
            _record(equal, cpu_budget=900.0, updates=300),
        ]
    )
    rows = text.splitlines()
    # Columns in the family's order, whatever order the records came in.
    assert rows[0] == "| task | view | fftnet | fnet | attention |"
    by_row = {tuple(r.split(" | ")[:2]): r for r in rows[2:]}
    # Mean 0.92 and sd 0.02 of (0.90, 0.94, 0.92), by hand; 402 updates on average.
    assert "0.9200 ± 0.0200 (3 seeds; 402 updates, 251 CPU s; jax)" in by_row["| text", "240 CPU s"]
    assert "0.8000 (1 seed; 711 updates" in by_row["| text", "240 CPU s"]
    # The equal-updates view is a row of its own; a capped pair says how far it got.
    upd = by_row["| text", "300 updates"]
    assert "21 of 300 updates, 480 CPU s; torch)" in upd
    assert "0.7500 (1 seed; 300 updates, 180 CPU s; jax)" in upd
    assert upd.split(" | ")[2] == "not run"  # fftnet: no run in that view
    assert "out of memory at 16,384 tokens" in by_row["| pathx", "240 CPU s"]
    assert all(r.count("|") == rows[0].count("|") for r in rows)
    with pytest.raises(ValueError, match="twice"):
        arena.glance([_record(cpu), _record(cpu[:1])])


def test_glance_splits_a_row_where_one_mixer_ran_on_two_backends():
    jax_runs = [_cell(model=m, seed=0, backend="jax") for m in ("fftnet", "fnet")]
    torch_runs = [_cell(model="fnet", seed=0, backend="torch", test_accuracy=0.65)]
    rows = arena.glance([_record(jax_runs), _record(torch_runs)]).splitlines()[2:]
    assert [r.split(" | ")[1] for r in rows] == ["240 CPU s, jax", "240 CPU s, torch"]
    assert rows[1].split(" | ")[2] == "not run"  # no fftnet on torch
    assert "0.6500 (1 seed; 711 updates, 251 CPU s; torch)" in rows[1]
    assert "torch" not in rows[0]


def test_arena_table_command_prints_and_writes_the_glance(tmp_path, capsys):
    from spectralmix import cli

    path = tmp_path / "results.json"
    path.write_text(json.dumps(_record([_cell(seed=0), _cell(seed=1, test_accuracy=0.77)])))
    out = tmp_path / "glance.md"
    assert cli.main(["arena-table", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| image | 240 CPU s | 0.7600 ± 0.0141 (2 seeds; 711 updates" in printed
    assert out.read_text() == printed
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SystemExit) as error:
        cli.main(["arena-table", str(bad)])
    assert error.value.code == 2
    assert "bad.json is not an arena's results.json" in capsys.readouterr().err
