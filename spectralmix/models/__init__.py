"""Model families in keras-hub's shape: a functional backbone and task models that take it.

- `fftnet`: `FFTNetBackbone`, `FFTNetClassifier` (token sequences), preset `fftnet_listops`;
  `FFTNetCausalLM` (next-byte language model on a causal mixer, cached generation).
- `fftnet_vit`: `FFTNetViTBackbone`, `FFTNetViTImageClassifier` (images) with presets.

Presets are directories in keras-hub's layout (`save_to_preset`, `from_preset`); models saved
by spectralmix 0.1 convert with `convert_legacy_file`.
"""

from spectralmix.models.base import Backbone, Task
from spectralmix.models.fftnet import (
    FFTNetBackbone,
    FFTNetCausalLM,
    FFTNetClassifier,
    causal_mixer_kwargs,
    causal_token_mixers,
)
from spectralmix.models.fftnet_vit import FFTNetViTBackbone, FFTNetViTImageClassifier
from spectralmix.models.legacy import convert_legacy_file
from spectralmix.models.presets import get_preset, list_presets

__all__ = [
    "Backbone",
    "FFTNetBackbone",
    "FFTNetCausalLM",
    "FFTNetClassifier",
    "FFTNetViTBackbone",
    "FFTNetViTImageClassifier",
    "Task",
    "causal_mixer_kwargs",
    "causal_token_mixers",
    "convert_legacy_file",
    "get_preset",
    "list_presets",
]
