"""Learned absolute position embeddings added to token features."""

from __future__ import annotations

import keras
from keras import ops

from spectralmix.layers import _checks


@keras.saving.register_keras_serializable(package="spectralmix")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position: `y[:, i] = x[:, i] + P[i]`.

    Args:
        max_sequence_length: number of learned positions; longer inputs raise a `ValueError`
            (they are never truncated).
        initializer: initializer of `P`. Defaults to a truncated normal of stddev 0.02.
        **kwargs: base `keras.layers.Layer` arguments.

    Input shape:
        `(batch, sequence_length, channels)` with `sequence_length <= max_sequence_length`.

    Output shape:
        Same as the input.

    Examples:
        >>> import numpy as np
        >>> layer = PositionEmbedding(8, initializer="ones")
        >>> y = layer(np.zeros((1, 3, 2), "float32"))
        >>> keras.ops.convert_to_numpy(y).tolist()
        [[[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]]
    """

    def __init__(self, max_sequence_length, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.max_sequence_length = _checks.positive_int("max_sequence_length", max_sequence_length)
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.TruncatedNormal(stddev=0.02)
        )
        self.supports_masking = True

    def build(self, input_shape):
        shape = _checks.sequence_shape("PositionEmbedding", input_shape)
        self._check_length(shape[1])
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.max_sequence_length, shape[-1]),
            initializer=self.initializer,
        )

    def _check_length(self, length):
        if length is not None and length > self.max_sequence_length:
            raise ValueError(
                f"PositionEmbedding has {self.max_sequence_length} positions; the input has "
                f"{length} tokens. Received: sequence_length={length}"
            )

    def call(self, inputs):
        length = inputs.shape[1]
        self._check_length(length)
        if length is None:
            length = ops.shape(inputs)[1]
        # A Variable must become a tensor before jax traces the slice.
        table = ops.convert_to_tensor(self.position_embeddings)
        positions = ops.slice(table, (0, 0), (length, table.shape[-1]))
        return inputs + ops.cast(positions, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "max_sequence_length": self.max_sequence_length,
            "initializer": keras.initializers.serialize(self.initializer),
        }
