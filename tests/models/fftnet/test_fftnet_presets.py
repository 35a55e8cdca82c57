import numpy as np
import pytest

from spectralmix.data import listops as data_lib
from spectralmix.models import FFTNetBackbone, FFTNetClassifier, get_preset, list_presets
from spectralmix.models.presets import preset_weights_path
from spectralmix.tasks import listops

#: LRA ListOps test accuracy of always answering the most common class (README of the data).
MAJORITY_BASELINE = 0.177
#: The FFTNet paper's LRA ListOps test accuracy, the bar the shipped model must reach.
PAPER_FFTNET_LISTOPS = 0.3765


def test_listops_preset_is_registered_with_its_training_record():
    assert "fftnet_listops" in list_presets("FFTNetClassifier")
    preset = get_preset("fftnet_listops")
    metrics = preset["metadata"]["metrics"]
    assert preset["metadata"]["test_accuracy"] == metrics["test_accuracy"]
    assert metrics["model"] == "fftnet"
    assert metrics["train_examples"] == 20000
    assert "spectralmix train listops" in preset["metadata"]["command"]
    assert preset_weights_path("fftnet_listops").endswith("fftnet_listops.weights.h5")


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
