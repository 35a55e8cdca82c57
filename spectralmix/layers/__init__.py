"""Keras layers of spectralmix; each is serializable under the package name "spectralmix".

Token mixers (`AdaptiveSpectralFilter` "fftnet", `FourierMixing` "fnet", `SelfAttention`
"attention", `HyenaOperator` "hyena", and any registered with `register_token_mixer`) are
found by name in `spectralmix.registry`; `MetaFormerBlock` wraps any of them in a residual block,
`FFTNetBlock` is its FFTNet form.
"""

# Registers spectralmix's learning-rate schedules (PerUpdate) and optimizer (AdamW): whatever
# loads a spectralmix model imports the layers first, so a checkpoint's optimizer loads with it.
from spectralmix import optimizers as _optimizers  # noqa: F401
from spectralmix import schedules as _schedules  # noqa: F401
from spectralmix.layers.adaptive_spectral_filter import AdaptiveSpectralFilter
from spectralmix.layers.class_token import ClassToken
from spectralmix.layers.drop_path import DropPath
from spectralmix.layers.fftnet_block import FFTNetBlock
from spectralmix.layers.fourier_mixing import FourierMixing
from spectralmix.layers.global_filter import GlobalFilter
from spectralmix.layers.global_filter_2d import GlobalFilter2D
from spectralmix.layers.hyena import HyenaOperator
from spectralmix.layers.hyena_filter import HyenaFilter
from spectralmix.layers.metaformer_block import MetaFormerBlock
from spectralmix.layers.mod_relu import ModReLU
from spectralmix.layers.position_embedding import PositionEmbedding
from spectralmix.layers.self_attention import SelfAttention
from spectralmix.registry import (
    get_token_mixer,
    register_token_mixer,
    token_mixer_names,
    unregister_token_mixer,
)

__all__ = [
    "AdaptiveSpectralFilter",
    "ClassToken",
    "DropPath",
    "FFTNetBlock",
    "FourierMixing",
    "GlobalFilter",
    "GlobalFilter2D",
    "HyenaFilter",
    "HyenaOperator",
    "MetaFormerBlock",
    "ModReLU",
    "PositionEmbedding",
    "SelfAttention",
    "get_token_mixer",
    "register_token_mixer",
    "token_mixer_names",
    "unregister_token_mixer",
]
