"""Model families, keras-hub style: a functional backbone and task models that wrap it.

- `fftnet`: `FFTNetBackbone`, `FFTNetClassifier` (token sequences).
- `fftnet_vit`: `FFTNetViTBackbone`, `FFTNetViTImageClassifier` (images) with presets.
"""

from spectralmix.models.fftnet import FFTNetBackbone, FFTNetClassifier
from spectralmix.models.fftnet_vit import FFTNetViTBackbone, FFTNetViTImageClassifier
from spectralmix.models.presets import get_preset, list_presets

__all__ = [
    "FFTNetBackbone",
    "FFTNetClassifier",
    "FFTNetViTBackbone",
    "FFTNetViTImageClassifier",
    "get_preset",
    "list_presets",
]
