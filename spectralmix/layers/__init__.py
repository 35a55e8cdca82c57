"""Keras layers of spectralmix; each is serializable under the package name "spectralmix"."""

# Registers spectralmix's learning-rate schedules (PerUpdate): whatever loads a spectralmix model
# imports the layers first, so a checkpoint's optimizer loads with it.
from spectralmix import schedules as _schedules  # noqa: F401
from spectralmix.layers.adaptive_spectral_filter import AdaptiveSpectralFilter
from spectralmix.layers.class_token import ClassToken
from spectralmix.layers.drop_path import DropPath
from spectralmix.layers.fftnet_block import FFTNetBlock
from spectralmix.layers.fourier_mixing import FourierMixing
from spectralmix.layers.mod_relu import ModReLU
from spectralmix.layers.position_embedding import PositionEmbedding

__all__ = [
    "AdaptiveSpectralFilter",
    "ClassToken",
    "DropPath",
    "FFTNetBlock",
    "FourierMixing",
    "ModReLU",
    "PositionEmbedding",
]
