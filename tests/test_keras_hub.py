"""keras-hub reads spectralmix presets: run by `nox -s keras_hub` (keras-hub installed);
skipped elsewhere."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub", reason="needs the keras-hub extra (nox -s keras_hub)")

from spectralmix.models import FFTNetBackbone, FFTNetClassifier  # noqa: E402
from tests.helpers import assert_close  # noqa: E402


def test_keras_hub_loads_a_saved_spectralmix_backbone(tmp_path):
    backbone = FFTNetBackbone(
        vocabulary_size=12, max_sequence_length=16, hidden_dim=16, num_layers=1, num_heads=2
    )
    backbone.save_to_preset(tmp_path / "preset")
    with open(tmp_path / "preset" / "config.json", encoding="utf-8") as f:
        assert json.load(f)["registered_name"] == "spectralmix>FFTNetBackbone"
    loaded = keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"))
    assert type(loaded) is FFTNetBackbone
    ids = np.array([[3, 4, 5, 6, 0, 0]])
    assert_close(loaded(ids), np.asarray(backbone(ids)))


def test_keras_hub_loads_the_shipped_listops_backbone(tmp_path):
    classifier = FFTNetClassifier.from_preset("fftnet_listops")
    classifier.save_to_preset(tmp_path / "listops")
    loaded = keras_hub.models.Backbone.from_preset(str(tmp_path / "listops"))
    ids = np.array([[1, 2, 3, 4, 5, 6, 7, 8]])
    assert_close(loaded(ids), np.asarray(classifier.backbone(ids)))
