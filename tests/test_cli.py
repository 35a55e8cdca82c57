import json
import os
import subprocess
import sys

import keras
import pytest

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
