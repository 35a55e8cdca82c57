"""FFTNetViT backbone: a Vision Transformer whose token mixer is the FFTNet spectral filter."""

from __future__ import annotations

import keras

from spectralmix.layers import ClassToken, _checks
from spectralmix.models.base import ConfiguredModel, check_encoder_arguments, encoder
from spectralmix.models.fftnet_vit.fftnet_vit_layers import PatchEmbedding, PatchPositionEmbedding

CONFIG_KEYS = (
    "image_size",
    "patch_size",
    "num_channels",
    "hidden_dim",
    "num_layers",
    "num_heads",
    "mlp_ratio",
    "dropout",
    "drop_path",
    "token_mixer",
    "variant",
    "layer_norm_epsilon",
    "fft_impl",
    "modrelu_epsilon",
)


@keras.saving.register_keras_serializable(package="spectralmix")
class FFTNetViTBackbone(ConfiguredModel):
    """FFTNetViT: patch embedding, class token, learned positions, FFTNet blocks, final norm.

    `images (B, H, W, C)` → `PatchEmbedding` → `+ positions` → flatten to `(B, P, D)` →
    `ClassToken` → dropout → `num_layers × FFTNetBlock` → `LayerNorm` → `(B, P + 1, D)`.
    The spectral filters are defined for `P + 1` tokens at `image_size` and resampled at
    other sizes, as is the position table, so a model built at 224 runs at 160 or 288
    (sides divisible by `patch_size`). `token_mixer="attention"` gives the ViT baseline and
    `"fnet"` the FNet one, with everything else equal.

    Args:
        image_size: side of the (square) training images, pixels.
        patch_size: patch side, pixels; must divide `image_size`.
        num_channels: image channels.
        hidden_dim: token width `D`.
        num_layers: number of blocks.
        num_heads: heads per block; must divide `hidden_dim`.
        mlp_ratio: MLP width as a multiple of `hidden_dim`.
        dropout: dropout after the embeddings, on the mixer output and in the MLPs.
        drop_path: stochastic depth rate of the last block (linearly from 0 in the first).
        token_mixer: `"fftnet"`, `"fnet"` or `"attention"`.
        variant: FFTNet form, `"v1"` (paper) or `"v2"` (later code); see `FFTNetBlock`.
        layer_norm_epsilon: LayerNorm epsilon.
        fft_impl: `"fft"` (default), `"dft"` or `"auto"`: how the spectral mixers compute
            their transforms (see `AdaptiveSpectralFilter`); `spectralmix.export` uses `"dft"`
            for formats with no FFT op.
        modrelu_epsilon: the spectral filters' modReLU floor (see `AdaptiveSpectralFilter`):
            `1e-3` as the authors, `0` for the exact form.
        dtype: dtype policy of the layers (e.g. `"mixed_bfloat16"`).

    Examples:
        >>> import numpy as np
        >>> backbone = FFTNetViTBackbone(image_size=32, patch_size=8, hidden_dim=32,
        ...                              num_layers=1, num_heads=4)
        >>> tuple(backbone(np.zeros((2, 32, 32, 3), "float32")).shape)
        (2, 17, 32)

    Reference:
        Fein-Ashley et al., "The FFT Strikes Back", arXiv:2502.18394; Dosovitskiy et al.,
        "An Image is Worth 16x16 Words", ICLR 2021.
    """

    _preset_class = "FFTNetViTImageClassifier"
    _preset_ignored_keys = ("num_classes",)
    _config_keys = CONFIG_KEYS

    def __init__(
        self,
        image_size=224,
        patch_size=16,
        num_channels=3,
        hidden_dim=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4.0,
        dropout=0.0,
        drop_path=0.0,
        token_mixer="fftnet",
        variant="v1",
        layer_norm_epsilon=1e-5,
        fft_impl="fft",
        modrelu_epsilon=_checks.MODRELU_EPSILON,
        dtype=None,
        **kwargs,
    ):
        image_size = _checks.positive_int("image_size", image_size)
        patch_size = _checks.positive_int("patch_size", patch_size)
        if image_size % patch_size:
            raise ValueError(
                "`image_size` must be divisible by `patch_size`. "
                f"Received: image_size={image_size}, patch_size={patch_size}"
            )
        num_channels = _checks.positive_int("num_channels", num_channels)
        hidden_dim, num_layers, num_heads, token_mixer, drop_path = check_encoder_arguments(
            hidden_dim, num_layers, num_heads, token_mixer, drop_path
        )
        fft_impl = _checks.choice("fft_impl", fft_impl, _checks.FFT_IMPLS)
        modrelu_epsilon = _checks.non_negative_float("modrelu_epsilon", modrelu_epsilon)
        grid = image_size // patch_size
        num_tokens = grid * grid + 1

        images = keras.Input((None, None, num_channels), name="images")
        x = PatchEmbedding(hidden_dim, patch_size, dtype=dtype, name="patch_embedding")(images)
        x = PatchPositionEmbedding(grid, dtype=dtype, name="position_embedding")(x)
        x = keras.layers.Reshape((-1, hidden_dim), dtype=dtype, name="tokens")(x)
        x = ClassToken(dtype=dtype, name="class_token")(x)
        x = keras.layers.Dropout(dropout, dtype=dtype, name="embedding_dropout")(x)
        x = encoder(
            x,
            num_tokens=num_tokens,
            num_layers=num_layers,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            drop_path=drop_path,
            token_mixer=token_mixer,
            variant=variant,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=dtype,
            fft_impl=fft_impl,
            modrelu_epsilon=modrelu_epsilon,
        )
        super().__init__(inputs=images, outputs=x, dtype=dtype, **kwargs)

        self._store_config(locals())
