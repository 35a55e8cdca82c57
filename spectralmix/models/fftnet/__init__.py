"""The FFTNet sequence family: backbone and classifier."""

from spectralmix.models.fftnet.fftnet_backbone import FFTNetBackbone
from spectralmix.models.fftnet.fftnet_classifier import FFTNetClassifier

__all__ = ["FFTNetBackbone", "FFTNetClassifier"]
