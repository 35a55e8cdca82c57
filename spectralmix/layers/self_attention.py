"""Multi-head self-attention as a token mixer: the O(N²) baseline of the spectral mixers."""

from __future__ import annotations

import math
from types import MappingProxyType

import keras
from keras import ops

from spectralmix import sequence_parallel
from spectralmix.layers import _checks

#: Float32 bytes of the scores, the probabilities and their gradient: the memory that grows
#: with the square of the length while training.
_SCORE_COPIES = 3


@keras.saving.register_keras_serializable(package="spectralmix")
class SelfAttention(keras.layers.MultiHeadAttention):
    """Multi-head self-attention with the token mixers' call signature.

    `y = MultiHeadAttention(x, x)`: queries, keys and values are projections of the same
    tokens; padded tokens are never attended to (`value_mask`). It subclasses
    `keras.layers.MultiHeadAttention` (same weights, same variable paths), so models saved
    with the attention baseline before it existed load unchanged. `causal=True` also masks
    later tokens (Keras's own causal mask), so no output depends on a later token.

    Args:
        num_heads: number of attention heads; must divide the channels.
        key_dim: size of each head's queries and keys; defaults to `channels // num_heads`.
        dropout: dropout on the attention probabilities.
        causal: whether token `t` attends only to tokens `≤ t`.
        kernel_initializer: initializer of the projection kernels.
        bias_initializer: initializer of the projection biases.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Input shape:
        `(batch, sequence_length, channels)`.

    Output shape:
        Same as the input.

    Call arguments:
        inputs: the token features.
        mask: optional boolean `(batch, sequence_length)` padding mask.
        training: whether dropout is active.

    Examples:
        >>> import numpy as np
        >>> layer = SelfAttention(num_heads=4, causal=True)
        >>> tuple(layer(np.zeros((2, 8, 16), "float32")).shape)
        (2, 8, 16)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    model_arguments = ("num_heads", "kernel_initializer", "bias_initializer")
    model_parallel_layout = MappingProxyType(
        {
            # Projections (D, H, d) and biases (H, d) split by head; the output (H, d, D) too.
            "(?:query|key|value)/kernel": (None, "model", None),
            "(?:query|key|value)/bias": ("model", None),
            "attention_output/kernel": ("model", None, None),
        }
    )

    def __init__(
        self,
        num_heads,
        key_dim=None,
        dropout=0.0,
        causal=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        num_heads = _checks.positive_int("num_heads", num_heads)
        key_dim = _checks.optional_positive_int("key_dim", key_dim)
        # The base class wants key_dim now; when it follows from the channels, `build` sets it.
        super().__init__(
            num_heads,
            key_dim or 1,
            dropout=_checks.rate("dropout", dropout),
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )
        self.requested_key_dim = key_dim
        self.causal = _checks.boolean("causal", causal)

    def build(self, input_shape):
        shape = _checks.sequence_shape("SelfAttention", input_shape, self.num_heads)
        if self.requested_key_dim is None:
            self._key_dim = self._value_dim = shape[-1] // self.num_heads
            self._inverse_sqrt_key_dim = 1.0 / math.sqrt(float(self._key_dim))
        super().build(shape, shape)

    def call(self, inputs, mask=None, training=None):
        if sequence_parallel.is_active():  # not sharded over the tokens: a one-line error
            return sequence_parallel.sharded_call(self, inputs, mask)
        return super().call(
            inputs, inputs, value_mask=mask, training=training, use_causal_mask=self.causal
        )

    def init_cache(self, batch_size, max_length):
        """Zero keys and values for generating up to `max_length` tokens: a tuple
        `(keys, values)` of shape `(batch_size, max_length, num_heads, key_dim)` (and
        `value_dim`), in the compute dtype (static shapes: a compiled step never retraces)."""
        self._check_cache_use("init_cache")
        batch_size = _checks.positive_int("batch_size", batch_size)
        max_length = _checks.positive_int("max_length", max_length)
        return (
            ops.zeros((batch_size, max_length, self.num_heads, self._key_dim), self.compute_dtype),
            ops.zeros(
                (batch_size, max_length, self.num_heads, self._value_dim), self.compute_dtype
            ),
        )

    def call_with_cache(self, inputs, cache, cache_index):
        """Attention of the tokens at positions `cache_index .. cache_index + T - 1` to
        every token up to each of them: their keys and values are written into `cache`,
        the earlier ones read from it (inference: no dropout).

        Args:
            inputs: `(batch, T, channels)`, `T` static (the prompt, then 1 per step).
            cache: `(keys, values)` from `init_cache` or the previous call.
            cache_index: position of `inputs[:, 0]`, a Python int or a scalar int tensor.

        Returns:
            `(outputs, new_cache)`: `outputs` `(batch, T, channels)` equal to
            `self(full_inputs)` at those positions, within float32 round-off.
        """
        self._check_cache_use("call_with_cache")
        inputs = ops.convert_to_tensor(inputs, self.compute_dtype)
        key_cache, value_cache = cache
        start = ops.cast(cache_index, "int32")
        query = self._query_dense(inputs)
        key_cache = ops.slice_update(
            key_cache, [0, start, 0, 0], ops.cast(self._key_dense(inputs), key_cache.dtype)
        )
        value_cache = ops.slice_update(
            value_cache, [0, start, 0, 0], ops.cast(self._value_dense(inputs), value_cache.dtype)
        )
        # Query t (position start + t) sees cached keys 0 .. start + t; the rest are zeros.
        query_positions = start + ops.arange(ops.shape(inputs)[1], dtype="int32")
        key_positions = ops.arange(ops.shape(key_cache)[1], dtype="int32")
        visible = ops.expand_dims(key_positions, 0) <= ops.expand_dims(query_positions, 1)
        visible = ops.broadcast_to(
            ops.expand_dims(visible, 0),
            (ops.shape(inputs)[0], ops.shape(visible)[0], ops.shape(visible)[1]),
        )
        attended, _ = self._compute_attention(
            query, key_cache, value_cache, attention_mask=visible, training=False
        )
        return self._output_dense(attended), (key_cache, value_cache)

    def _check_cache_use(self, method):
        if not self.causal:
            raise ValueError(
                f"SelfAttention.{method} generates token by token and needs a causal layer; "
                f"build it with causal=True. Received: causal={self.causal}"
            )
        if not self.built:
            raise ValueError(
                f"SelfAttention.{method} needs the layer built first (its key size follows the "
                "channels): call it once or build it"
            )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs, mask=None, training=None):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

    def get_config(self):
        base = keras.layers.Layer.get_config(self)
        return {
            **base,
            "num_heads": self.num_heads,
            "key_dim": self.requested_key_dim,
            "dropout": self.dropout,
            "causal": self.causal,
            "kernel_initializer": keras.initializers.serialize(self._kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self._bias_initializer),
        }

    @staticmethod
    def training_bytes_per_example(length, num_heads):
        """Float32 scores, probabilities and their gradient `(heads, L, L)`, and the mask."""
        return num_heads * length * length * 4 * _SCORE_COPIES + length * length

    @staticmethod
    def count_parameters(channels, arguments):
        """q, k, v `(D, H, d)` with biases `(H, d)` and the output `(H, d, D)` with a bias
        `(D)`, `d = key_dim` (default `D / H`); none depends on the length."""
        heads = arguments["num_heads"]
        width = heads * (arguments.get("key_dim") or channels // heads)
        return 3 * (channels * width + width) + width * channels + channels

    @staticmethod
    def count_flops(tally, tokens, channels, arguments):
        """q, k, v and output projections `D → D`, the query scale, `QKᵀ` and `AV`, softmax."""
        from spectralmix import flops

        heads = arguments["num_heads"]
        for _ in ("query", "key", "value"):
            tally.dense(tokens, channels, channels)
        tally.add("elementwise", flops.QUERY_SCALE * tokens * channels)
        tally.add("attention_scores", 2 * flops.MULTIPLY_ADD * tokens * tokens * channels)
        tally.add("softmax", flops.SOFTMAX_PER_SCORE * heads * tokens * tokens)
        tally.dense(tokens, channels, channels)
