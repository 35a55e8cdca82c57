"""FFTNet sequence backbone: token embeddings with padding masks and a stack of FFTNet blocks."""

from __future__ import annotations

import keras

from spectralmix.layers import ClassToken, PositionEmbedding, _checks
from spectralmix.models.base import ConfiguredModel, check_encoder_arguments, encoder

CONFIG_KEYS = (
    "vocabulary_size",
    "max_sequence_length",
    "hidden_dim",
    "num_layers",
    "num_heads",
    "mlp_ratio",
    "dropout",
    "drop_path",
    "token_mixer",
    "variant",
    "class_token",
    "layer_norm_epsilon",
    "fft_impl",
    "modrelu_epsilon",
)


@keras.saving.register_keras_serializable(package="spectralmix")
class FFTNetBackbone(ConfiguredModel):
    """Token ids → embeddings (+ learned positions) → FFTNet blocks → final LayerNorm.

    Token id 0 is padding (Keras's `mask_zero` convention): it becomes a Keras mask that every
    layer honours, so padded content never changes the outputs at real positions. With
    `class_token=True` a learned class token is prepended (position 0, always real). The
    spectral filters and the position table are defined for `max_sequence_length` tokens
    (+1 with the class token) and the model runs at any length: shorter sequences use the
    first positions, longer ones resampled tables.

    Args:
        vocabulary_size: number of token ids, padding id 0 included.
        max_sequence_length: the sequence length the filters and positions are built for.
        hidden_dim: token width `D`.
        num_layers: number of blocks.
        num_heads: heads per block; must divide `hidden_dim`.
        mlp_ratio: MLP width as a multiple of `hidden_dim`.
        dropout: dropout after the embeddings, on the mixer output and in the MLPs.
        drop_path: stochastic depth rate of the last block (linearly from 0).
        token_mixer: `"fftnet"`, `"fnet"` or `"attention"`.
        variant: FFTNet form, `"v1"` (paper) or `"v2"`.
        class_token: whether to prepend a learned class token.
        layer_norm_epsilon: LayerNorm epsilon.
        fft_impl: `"fft"` (default), `"dft"` or `"auto"`: how the spectral mixers compute
            their transforms (see `AdaptiveSpectralFilter`); `spectralmix.export` uses `"dft"`
            for formats with no FFT op.
        modrelu_epsilon: the spectral filters' modReLU floor (see `AdaptiveSpectralFilter`):
            `1e-3` as the authors, `0` for the exact form.
        dtype: dtype policy of the layers.

    Examples:
        >>> import numpy as np
        >>> backbone = FFTNetBackbone(vocabulary_size=20, max_sequence_length=16,
        ...                           hidden_dim=32, num_layers=1, num_heads=4)
        >>> tuple(backbone(np.array([[3, 4, 5, 0, 0]])).shape)
        (1, 5, 32)
    """

    _config_keys = CONFIG_KEYS
    _preset_class = "FFTNetClassifier"
    _preset_ignored_keys = ("num_classes", "pooling")

    def __init__(
        self,
        vocabulary_size,
        max_sequence_length,
        hidden_dim=128,
        num_layers=4,
        num_heads=8,
        mlp_ratio=4.0,
        dropout=0.0,
        drop_path=0.0,
        token_mixer="fftnet",
        variant="v1",
        class_token=False,
        layer_norm_epsilon=1e-5,
        fft_impl="fft",
        modrelu_epsilon=_checks.MODRELU_EPSILON,
        dtype=None,
        **kwargs,
    ):
        vocabulary_size = _checks.positive_int("vocabulary_size", vocabulary_size)
        max_sequence_length = _checks.positive_int("max_sequence_length", max_sequence_length)
        hidden_dim, num_layers, num_heads, token_mixer, drop_path = check_encoder_arguments(
            hidden_dim, num_layers, num_heads, token_mixer, drop_path
        )
        fft_impl = _checks.choice("fft_impl", fft_impl, _checks.FFT_IMPLS)
        modrelu_epsilon = _checks.non_negative_float("modrelu_epsilon", modrelu_epsilon)
        class_token = _checks.boolean("class_token", class_token)
        num_tokens = max_sequence_length + int(class_token)

        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        x = keras.layers.Embedding(
            vocabulary_size, hidden_dim, mask_zero=True, dtype=dtype, name="token_embedding"
        )(token_ids)
        if class_token:
            x = ClassToken(dtype=dtype, name="class_token")(x)
        x = PositionEmbedding(num_tokens, dtype=dtype, name="position_embedding")(x)
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
        super().__init__(inputs=token_ids, outputs=x, dtype=dtype, **kwargs)

        self._store_config(locals())
