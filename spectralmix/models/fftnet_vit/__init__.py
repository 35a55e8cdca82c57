"""The FFTNetViT image family: backbone, image classifier, layers and presets."""

from spectralmix.models.fftnet_vit.fftnet_vit_backbone import FFTNetViTBackbone
from spectralmix.models.fftnet_vit.fftnet_vit_image_classifier import FFTNetViTImageClassifier
from spectralmix.models.fftnet_vit.fftnet_vit_layers import PatchEmbedding, PatchPositionEmbedding
from spectralmix.models.fftnet_vit.fftnet_vit_presets import FFTNET_VIT_PRESETS
from spectralmix.models.presets import register_presets

register_presets(FFTNET_VIT_PRESETS)

__all__ = [
    "FFTNET_VIT_PRESETS",
    "FFTNetViTBackbone",
    "FFTNetViTImageClassifier",
    "PatchEmbedding",
    "PatchPositionEmbedding",
]
