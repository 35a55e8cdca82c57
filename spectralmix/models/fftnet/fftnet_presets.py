"""FFTNet sequence presets: `fftnet_listops`, trained on LRA ListOps, weights in the package.

The weights file sits in `spectralmix/models/fftnet/weights/` and is loaded by
`FFTNetClassifier.from_preset("fftnet_listops")` (no download). How it was trained, and what
it scores, is in the metadata and in docs/listops.md.
"""

from __future__ import annotations

import json
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def _listops_preset() -> dict:
    """The preset, described by the training run's own metrics (weights/fftnet_listops.json)."""
    with open(os.path.join(_HERE, "weights", "fftnet_listops.json"), encoding="utf-8") as f:
        run = json.load(f)
    return {
        "class": "FFTNetClassifier",
        "config": run["config"],
        "weights": "fftnet_listops.weights.h5",
        "metadata": {
            "package": __package__,
            "description": "FFTNet trained on LRA ListOps (padding id 0, ids from "
            "spectralmix.data.listops.VOCABULARY)",
            "test_accuracy": run["metrics"]["test_accuracy"],
            "command": run["command"],
            "metrics": run["metrics"],
        },
    }


FFTNET_PRESETS = {"fftnet_listops": _listops_preset()}
