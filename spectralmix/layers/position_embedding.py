"""Learned absolute position embeddings added to token features."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from spectralmix.layers import _checks


@keras.saving.register_keras_serializable(package="spectralmix")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position: `y[:, i] = x[:, i] + P[i]`.

    Inputs up to `max_sequence_length` tokens use the first rows of `P` unchanged, so a
    token's position vector never depends on how much padding follows it. A longer input gets
    `P` resampled to its length by linear interpolation over normalised position (row `i` of
    `N` takes `P` at `i · (L - 1) / (N - 1)`), so nothing is truncated.

    Args:
        max_sequence_length: number of learned positions `L`.
        initializer: initializer of `P`. Defaults to a truncated normal of stddev 0.02.
        **kwargs: base `keras.layers.Layer` arguments.

    Input shape:
        `(batch, sequence_length, channels)`, any length.

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
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.max_sequence_length, shape[-1]),
            initializer=self.initializer,
        )

    def _positions(self, length):
        table = ops.convert_to_tensor(self.position_embeddings)  # a tensor before jax traces
        if length <= self.max_sequence_length:
            return ops.slice(table, (0, 0), (length, table.shape[-1]))
        position = np.arange(length) * (self.max_sequence_length - 1) / (length - 1)
        lower = np.floor(position).astype("int32")
        upper = np.minimum(lower + 1, self.max_sequence_length - 1)
        weight = ops.convert_to_tensor((position - lower)[:, None], table.dtype)
        return (
            ops.take(table, lower, axis=0) * (1.0 - weight)
            + ops.take(table, upper, axis=0) * weight
        )

    def call(self, inputs):
        length = inputs.shape[1]
        if length is None:
            # Length known only at run time (a TF graph): it must fit the learned table.
            length = ops.shape(inputs)[1]
            table = ops.convert_to_tensor(self.position_embeddings)
            positions = ops.slice(table, (0, 0), (length, table.shape[-1]))
        else:
            positions = self._positions(int(length))
        return inputs + ops.cast(positions, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "max_sequence_length": self.max_sequence_length,
            "initializer": keras.initializers.serialize(self.initializer),
        }
