"""FFTNetViT backbone: a Vision Transformer whose token mixer is the FFTNet spectral filter."""

from __future__ import annotations

import keras

from spectralmix.layers import ClassToken, _checks
from spectralmix.models.base import (
    ENCODER_KEYS,
    Backbone,
    check_block_arguments,
    check_encoder_arguments,
    check_model_kwargs,
    encoder,
)
from spectralmix.models.fftnet_vit.fftnet_vit_layers import PatchEmbedding, PatchPositionEmbedding


@keras.saving.register_keras_serializable(package="spectralmix")
class FFTNetViTBackbone(Backbone):
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
        token_mixer: a registered token mixer: `"fftnet"` (default), `"fnet"`,
            `"attention"` or any other (`spectralmix.layers.token_mixer_names()`).
        token_mixer_kwargs: the mixer's own arguments, e.g. `{"variant": "v2"}` for
            `"fftnet"` (see `AdaptiveSpectralFilter`); `num_heads` and the filter length come
            from the backbone for the mixers that declare them.
        norm_first: pre-norm blocks (`True`) or post-norm (`False`, the FFTNet paper's code).
        layer_norm_epsilon: LayerNorm epsilon.
        remat: rematerialise each block's mixer and MLP in training (`keras.remat`):
            `False` (default), `True`, `"mixer"` or `"mlp"` (see `MetaFormerBlock`); needs
            `dropout=0`.
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

    config_keys = ("image_size", "patch_size", "num_channels", *ENCODER_KEYS, "remat")

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
        token_mixer_kwargs=None,
        norm_first=False,
        layer_norm_epsilon=1e-5,
        remat=False,
        dtype=None,
        **kwargs,
    ):
        check_model_kwargs(type(self), kwargs)
        image_size = _checks.positive_int("image_size", image_size)
        patch_size = _checks.positive_int("patch_size", patch_size)
        if image_size % patch_size:
            raise ValueError(
                "`image_size` must be divisible by `patch_size`. "
                f"Received: image_size={image_size}, patch_size={patch_size}"
            )
        num_channels = _checks.positive_int("num_channels", num_channels)
        hidden_dim, num_layers, num_heads, token_mixer, token_mixer_kwargs = (
            check_encoder_arguments(
                hidden_dim, num_layers, num_heads, token_mixer, token_mixer_kwargs
            )
        )
        mlp_ratio, dropout, drop_path, norm_first = check_block_arguments(
            mlp_ratio, dropout, drop_path, norm_first
        )
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
            token_mixer_kwargs=token_mixer_kwargs,
            norm_first=norm_first,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=dtype,
            remat=remat,
        )
        super().__init__(inputs=images, outputs=x, dtype=dtype, **kwargs)
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.dropout = dropout
        self.drop_path = drop_path
        self.token_mixer = token_mixer
        self.token_mixer_kwargs = token_mixer_kwargs
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.remat = self.get_layer("block_0").remat
