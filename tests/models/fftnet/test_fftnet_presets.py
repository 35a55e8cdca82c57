import json
import os

import numpy as np
import pytest

from spectralmix.data import listops as data_lib
from spectralmix.models import FFTNetBackbone, FFTNetClassifier, get_preset, list_presets
from spectralmix.models.fftnet.fftnet_presets import LISTOPS_DIRECTORY
from spectralmix.tasks import listops
from tests.helpers import to_numpy

#: LRA ListOps test accuracy of always answering the most common class (README of the data).
MAJORITY_BASELINE = 0.177
#: The FFTNet paper's LRA ListOps test accuracy, the bar the shipped model must reach.
PAPER_FFTNET_LISTOPS = 0.3765
#: The test accuracy that the training run recorded (spectralmix 0.1's fftnet_listops.json).
RECORDED_TEST_ACCURACY = 0.3835
#: The files of a task preset directory (keras-hub's layout).
PRESET_FILES = {
    "config.json",
    "model.weights.h5",
    "metadata.json",
    "task.json",
    "task.weights.h5",
}


def test_listops_preset_is_registered_with_its_training_record():
    assert "fftnet_listops" in list_presets("FFTNetClassifier")
    assert "fftnet_listops" in list_presets("FFTNetBackbone")
    preset = get_preset("fftnet_listops")
    metrics = preset["metadata"]["metrics"]
    assert preset["metadata"]["test_accuracy"] == metrics["test_accuracy"]
    assert metrics["test_accuracy"] == RECORDED_TEST_ACCURACY
    assert metrics["model"] == "fftnet"
    assert metrics["train_examples"] == 20000
    assert "spectralmix train listops" in preset["metadata"]["command"]
    assert os.path.samefile(preset["directory"], LISTOPS_DIRECTORY)


def test_listops_preset_is_a_shipped_directory_in_keras_hub_layout():
    assert set(os.listdir(LISTOPS_DIRECTORY)) == PRESET_FILES

    def read(name):
        with open(os.path.join(LISTOPS_DIRECTORY, name), encoding="utf-8") as f:
            return json.load(f)

    backbone, task, metadata = read("config.json"), read("task.json"), read("metadata.json")
    assert backbone["registered_name"] == "spectralmix>FFTNetBackbone"
    assert task["registered_name"] == "spectralmix>FFTNetClassifier"
    assert task["config"]["backbone"]["config"] == backbone["config"]
    # What it was trained as (spectralmix 0.1's flat config, the exact modReLU).
    assert backbone["config"]["token_mixer_kwargs"]["modrelu_epsilon"] == 0.0
    assert backbone["config"]["class_token"] is True
    assert metadata == get_preset("fftnet_listops")["metadata"]
    model = FFTNetClassifier.from_preset("fftnet_listops")
    assert metadata["parameter_count"] == metadata["metrics"]["parameters"]
    assert model.count_params() == metadata["parameter_count"]


def test_shipped_weights_load_and_differ_from_a_fresh_model():
    trained = FFTNetClassifier.from_preset("fftnet_listops")
    fresh = FFTNetClassifier.from_preset("fftnet_listops", load_weights=False)
    assert trained.count_params() == fresh.count_params()
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(trained.get_weights(), fresh.get_weights(), strict=True)
    )
    backbone = FFTNetBackbone.from_preset("fftnet_listops")
    for a, b in zip(backbone.get_weights(), trained.backbone.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_name_and_directory_load_the_same_model():
    by_name = FFTNetClassifier.from_preset("fftnet_listops")
    by_directory = FFTNetClassifier.from_preset(LISTOPS_DIRECTORY)
    ids = np.array([[1, 5, 9, 2, 3, 0, 0]], "int32")
    np.testing.assert_array_equal(to_numpy(by_directory(ids)), to_numpy(by_name(ids)))


@pytest.mark.slow
def test_shipped_model_scores_what_its_training_run_reported_on_every_backend(
    shared_listops_dir,
):
    """The run (JAX) reported its test accuracy; each backend reproduces it from the file."""
    model = FFTNetClassifier.from_preset("fftnet_listops")
    test_file = data_lib.split_path(shared_listops_dir, "test")
    result = listops.evaluate(model, test_file, batch_size=128)
    assert result["n"] == 2000
    assert result["accuracy"] > MAJORITY_BASELINE + 0.1
    assert result["accuracy"] >= PAPER_FFTNET_LISTOPS
    assert result["accuracy"] == pytest.approx(
        get_preset("fftnet_listops")["metadata"]["test_accuracy"], abs=1e-9
    )
