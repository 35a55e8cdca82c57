"""The FFTNet sequence family: backbone, classifier and the trained ListOps preset."""

from spectralmix.models.fftnet.fftnet_backbone import FFTNetBackbone
from spectralmix.models.fftnet.fftnet_classifier import FFTNetClassifier
from spectralmix.models.fftnet.fftnet_presets import FFTNET_PRESETS
from spectralmix.models.presets import register_presets

register_presets(FFTNET_PRESETS)

__all__ = ["FFTNET_PRESETS", "FFTNetBackbone", "FFTNetClassifier"]
