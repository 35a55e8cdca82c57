"""Model families in keras-hub's shape: a functional backbone and task models that take it.

- `fftnet`: `FFTNetBackbone`, `FFTNetClassifier` (token sequences), preset `fftnet_listops`.
- `fftnet_vit`: `FFTNetViTBackbone`, `FFTNetViTImageClassifier` (images) with presets.

Presets are directories in keras-hub's layout (`save_to_preset`, `from_preset`); models saved
by spectralmix 0.1 convert with `convert_legacy_file`.
"""

from spectralmix.models.base import Backbone, Task
from spectralmix.models.fftnet import FFTNetBackbone, FFTNetClassifier
from spectralmix.models.fftnet_vit import FFTNetViTBackbone, FFTNetViTImageClassifier
from spectralmix.models.legacy import convert_legacy_file
from spectralmix.models.presets import get_preset, list_presets

__all__ = [
    "Backbone",
    "FFTNetBackbone",
    "FFTNetClassifier",
    "FFTNetViTBackbone",
    "FFTNetViTImageClassifier",
    "Task",
    "convert_legacy_file",
    "get_preset",
    "list_presets",
]
