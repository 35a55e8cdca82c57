"""FFTNet sequence backbone: token embeddings with padding masks and a stack of FFTNet blocks."""

from __future__ import annotations

import keras
from keras import ops

from spectralmix.layers import ClassToken, PositionEmbedding, _checks
from spectralmix.models.base import (
    ENCODER_KEYS,
    Backbone,
    check_block_arguments,
    check_encoder_arguments,
    check_model_kwargs,
    encoder,
    is_legacy_config,
)

#: The most rows the learned position table gets by default: `min(tokens, 4096)`; longer
#: sequences spread the rows over their positions (`PositionEmbedding(span=...)`), so the
#: parameters do not grow with `max_sequence_length`.
DEFAULT_MAX_POSITIONS = 4096


@keras.saving.register_keras_serializable(package="spectralmix")
class FFTNetBackbone(Backbone):
    """Token ids → embeddings (+ learned positions) → FFTNet blocks → final LayerNorm.

    Token id 0 is padding (Keras's `mask_zero` convention): it becomes a Keras mask that every
    layer honours, so padded content never changes the outputs at real positions. With
    `class_token=True` a learned class token is prepended (position 0, always real). The
    spectral filters and the position table are defined for `max_sequence_length` tokens
    (+1 with the class token) and the model runs at any length: shorter sequences use the
    first positions, longer ones resampled tables.

    Parameters against length: the filters get `filter_bins` frequency bins (default
    `min(tokens // 2 + 1, 2049)`) and the position table `num_positions` rows (default
    `min(tokens, 4096)`, spread evenly over the `tokens` positions when fewer), so up to 4,096
    tokens every position and bin has its own weights and beyond the parameters stay
    bounded: a 4-block model of width 64, 4 heads and 256 token ids has 2,625,200 parameters
    at 4,096 tokens and as many at 1,048,576, against 629,313,200 with a weight per bin and
    position (`spectralmix.flops.count_parameters`).

    Args:
        vocabulary_size: number of token ids, padding id 0 included.
        max_sequence_length: the sequence length the filters and positions are built for.
        hidden_dim: token width `D`.
        num_layers: number of blocks.
        num_heads: heads per block; must divide `hidden_dim`.
        mlp_ratio: MLP width as a multiple of `hidden_dim`.
        dropout: dropout after the embeddings, on the mixer output and in the MLPs.
        drop_path: stochastic depth rate of the last block (linearly from 0).
        token_mixer: a registered token mixer: `"fftnet"` (default), `"fnet"`,
            `"attention"` or any other (`spectralmix.layers.token_mixer_names()`).
        token_mixer_kwargs: the mixer's own arguments, e.g. `{"variant": "v2"}`,
            `{"fft_impl": "dft"}` or `{"modrelu_epsilon": 0.0}` for `"fftnet"` (see
            `AdaptiveSpectralFilter`). `num_heads` and the filter length come from the
            backbone for the mixers that declare them.
        norm_first: pre-norm blocks (`True`) or post-norm (`False`, the FFTNet paper's code).
        class_token: whether to prepend a learned class token.
        layer_norm_epsilon: LayerNorm epsilon.
        filter_bins: frequency bins of the spectral filters, for the mixers that take it
            (`"fftnet"`, `"gfnet"`; see `AdaptiveSpectralFilter`); `token_mixer_kwargs` wins.
            Defaults to the mixer's `min(tokens // 2 + 1, 2049)`.
        num_positions: rows of the learned position table. Defaults to
            `min(tokens, 4096)`; fewer rows than tokens are spread over the positions
            (`PositionEmbedding(span=tokens)`).
        remat: rematerialise each block's mixer and MLP in training (`keras.remat`):
            `False` (default), `True`, `"mixer"` or `"mlp"` (see `MetaFormerBlock`). Less
            memory for long sequences, the same outputs and gradients, about one more
            forward pass in time; needs `dropout=0`.
        dtype: dtype policy of the layers.

    Examples:
        >>> import numpy as np
        >>> backbone = FFTNetBackbone(vocabulary_size=20, max_sequence_length=16,
        ...                           hidden_dim=32, num_layers=1, num_heads=4)
        >>> tuple(backbone(np.array([[3, 4, 5, 0, 0]])).shape)
        (1, 5, 32)
    """

    config_keys = (
        "vocabulary_size",
        "max_sequence_length",
        *ENCODER_KEYS,
        "class_token",
        "filter_bins",
        "num_positions",
        "remat",
    )

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
        token_mixer_kwargs=None,
        norm_first=False,
        class_token=False,
        layer_norm_epsilon=1e-5,
        filter_bins=None,
        num_positions=None,
        remat=False,
        dtype=None,
        **kwargs,
    ):
        check_model_kwargs(type(self), kwargs)
        vocabulary_size = _checks.positive_int("vocabulary_size", vocabulary_size)
        max_sequence_length = _checks.positive_int("max_sequence_length", max_sequence_length)
        hidden_dim, num_layers, num_heads, token_mixer, token_mixer_kwargs = (
            check_encoder_arguments(
                hidden_dim, num_layers, num_heads, token_mixer, token_mixer_kwargs
            )
        )
        mlp_ratio, dropout, drop_path, norm_first = check_block_arguments(
            mlp_ratio, dropout, drop_path, norm_first
        )
        class_token = _checks.boolean("class_token", class_token)
        num_tokens = max_sequence_length + int(class_token)
        filter_bins = _checks.optional_filter_bins(filter_bins)
        num_positions = _checks.optional_positive_int("num_positions", num_positions)
        if num_positions is not None and num_positions > num_tokens:
            raise ValueError(
                f"`num_positions` can be at most the tokens the backbone is built for "
                f"({num_tokens}). Received: num_positions={num_positions}"
            )
        position_rows = num_positions or min(num_tokens, DEFAULT_MAX_POSITIONS)

        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        x = keras.layers.Embedding(
            vocabulary_size, hidden_dim, mask_zero=True, dtype=dtype, name="token_embedding"
        )(token_ids)
        if class_token:
            x = ClassToken(dtype=dtype, name="class_token")(x)
        x = PositionEmbedding(
            position_rows, span=num_tokens, dtype=dtype, name="position_embedding"
        )(x)
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
            filter_bins=filter_bins,
            remat=remat,
        )
        super().__init__(inputs=token_ids, outputs=x, dtype=dtype, **kwargs)
        self.vocabulary_size = vocabulary_size
        self.max_sequence_length = max_sequence_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.dropout = dropout
        self.drop_path = drop_path
        self.token_mixer = token_mixer
        self.token_mixer_kwargs = token_mixer_kwargs
        self.norm_first = norm_first
        self.class_token = class_token
        self.layer_norm_epsilon = layer_norm_epsilon
        self.filter_bins = filter_bins
        self.num_positions = num_positions
        self.remat = self.get_layer("block_0").remat

    @classmethod
    def from_config(cls, config):
        if not is_legacy_config(config) and "max_sequence_length" in config:
            # Saved before `filter_bins` and `num_positions` existed: a filter value per bin
            # and a position row per token, the shapes of its weights.
            tokens = config["max_sequence_length"] + int(config.get("class_token", False))
            filter_length = (config.get("token_mixer_kwargs") or {}).get(
                "max_sequence_length", tokens
            )
            config = _checks.legacy_default(config, "filter_bins", filter_length // 2 + 1)
            config = _checks.legacy_default(config, "num_positions", tokens)
        return super().from_config(config)

    def init_cache(self, batch_size, max_length):
        """The zero cache for generating up to `max_length` tokens: one entry per block
        (its mixer's, `MetaFormerBlock.init_cache`), static shapes. Needs a causal mixer with
        a cache (`"attention"` with `causal=True`, `"hyena"`) and no class token."""
        batch_size = _checks.positive_int("batch_size", batch_size)
        max_length = _checks.positive_int("max_length", max_length)
        if self.class_token:
            raise ValueError(
                "A backbone with a class token cannot generate token by token (the class token "
                "is position 0 of every sequence). Received: class_token=True"
            )
        if max_length > self.max_sequence_length:
            raise ValueError(
                f"Cannot generate beyond the backbone's max_sequence_length "
                f"({self.max_sequence_length}): the positions are learned up to there. "
                f"Received: max_length={max_length}"
            )
        return tuple(
            self.get_layer(f"block_{i}").init_cache(batch_size, max_length)
            for i in range(self.num_layers)
        )

    def call_with_cache(self, token_ids, cache, cache_index):
        """The backbone's outputs at positions `cache_index .. cache_index + T - 1` of
        `token_ids` `(batch, T)` (no padding), the earlier positions read from `cache`
        (`init_cache`), as a full call computes them there in inference within float32
        round-off. `cache_index` is a Python int or a scalar int tensor (one compiled step
        for every position). Returns `(outputs (batch, T, hidden_dim), new_cache)`."""
        if isinstance(cache_index, int) and not isinstance(cache_index, bool):
            length = token_ids.shape[1]
            if cache_index < 0 or cache_index + length > self.max_sequence_length:
                raise ValueError(
                    f"Positions {cache_index}..{cache_index + length - 1} are outside the "
                    f"backbone's max_sequence_length ({self.max_sequence_length}). "
                    f"Received: cache_index={cache_index}, {length} tokens"
                )
        x = self.get_layer("token_embedding")(token_ids)
        start = ops.cast(cache_index, "int32")
        # The vectors a full call adds at these positions (`PositionEmbedding.positions`).
        count = x.shape[1] if x.shape[1] is not None else ops.shape(x)[1]
        positions = self.get_layer("position_embedding").positions(start, count)
        x = x + ops.cast(positions, x.dtype)
        new_cache = []
        for i, block_cache in enumerate(cache):
            x, block_cache = self.get_layer(f"block_{i}").call_with_cache(x, block_cache, start)
            new_cache.append(block_cache)
        return self.get_layer("final_norm")(x), tuple(new_cache)
