"""FFTNet sequence presets: `fftnet_listops`, trained on LRA ListOps, shipped in the package.

The preset is a directory in keras-hub's layout, `spectralmix/models/fftnet/presets/
fftnet_listops/` (config.json, model.weights.h5, task.json, task.weights.h5, metadata.json),
loaded by `FFTNetClassifier.from_preset("fftnet_listops")` (no download). How it was trained
and what it scores are in its metadata.json and in docs/listops.md.
"""

from __future__ import annotations

import json
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
LISTOPS_DIRECTORY = os.path.join(_HERE, "presets", "fftnet_listops")


def _listops_preset() -> dict:
    with open(os.path.join(LISTOPS_DIRECTORY, "metadata.json"), encoding="utf-8") as f:
        metadata = json.load(f)
    return {
        "backbone": "FFTNetBackbone",
        "task": {"class": "FFTNetClassifier"},
        "directory": LISTOPS_DIRECTORY,
        "metadata": metadata,
    }


FFTNET_PRESETS = {"fftnet_listops": _listops_preset()}
