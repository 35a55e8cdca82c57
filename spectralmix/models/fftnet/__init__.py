"""The FFTNet sequence family: backbone, classifier, causal language model and the trained
ListOps preset."""

from spectralmix.models.fftnet.fftnet_backbone import FFTNetBackbone
from spectralmix.models.fftnet.fftnet_causal_lm import (
    FFTNetCausalLM,
    causal_mixer_kwargs,
    causal_token_mixers,
)
from spectralmix.models.fftnet.fftnet_classifier import FFTNetClassifier
from spectralmix.models.fftnet.fftnet_presets import FFTNET_PRESETS
from spectralmix.models.presets import register_presets

register_presets(FFTNET_PRESETS)

__all__ = [
    "FFTNET_PRESETS",
    "FFTNetBackbone",
    "FFTNetCausalLM",
    "FFTNetClassifier",
    "causal_mixer_kwargs",
    "causal_token_mixers",
]
