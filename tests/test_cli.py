import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

import spectralmix.models  # noqa: F401  (the classes that the checkpoints name)
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
        (["evaluate", "--preset", "no_such_preset", "--data", "z"], "no_such_preset"),
        (["train", "listops", "--data", "/nonexistent", "--model", "fnet"], "/nonexistent"),
        (["train", "listops", "--data", "d", "--dropout", "-0.5"], "--dropout"),
        (["train", "listops", "--data", "d", "--hidden-dim", "0"], "--hidden-dim"),
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
