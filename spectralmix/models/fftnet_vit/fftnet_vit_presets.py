"""FFTNetViT presets: configurations only (randomly initialised; nothing is downloaded).

Sizes: base, large and huge as in the FFTNet paper (Table: FFTNetViT-B/L/H, patch 16 at 224);
tiny and small follow DeiT (Touvron et al., 2021), the usual ViT-Ti/S widths.
"""

from __future__ import annotations


def _vit(size: str, hidden_dim: int, num_layers: int, num_heads: int, source: str) -> dict:
    return {
        "backbone": "FFTNetViTBackbone",
        "config": {
            "image_size": 224,
            "patch_size": 16,
            "num_channels": 3,
            "hidden_dim": hidden_dim,
            "num_layers": num_layers,
            "num_heads": num_heads,
            "mlp_ratio": 4.0,
        },
        "task": {"class": "FFTNetViTImageClassifier", "config": {"num_classes": 1000}},
        "metadata": {
            "description": f"FFTNetViT-{size}/16 at 224x224, 1000 classes, randomly initialised",
            "source": source,
        },
    }


PAPER = "FFTNet paper, arXiv:2502.18394"
DEIT = "DeiT sizes, arXiv:2012.12877"

FFTNET_VIT_PRESETS = {
    "fftnet_vit_tiny_patch16_224": _vit("Ti", 192, 12, 3, DEIT),
    "fftnet_vit_small_patch16_224": _vit("S", 384, 12, 6, DEIT),
    "fftnet_vit_base_patch16_224": _vit("B", 768, 12, 12, PAPER),
    "fftnet_vit_large_patch16_224": _vit("L", 1024, 24, 16, PAPER),
    "fftnet_vit_huge_patch16_224": _vit("H", 1280, 32, 16, PAPER),
}
