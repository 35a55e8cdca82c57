"""Learned absolute position embeddings added to token features."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from spectralmix import sequence_parallel
from spectralmix.layers import _checks


@keras.saving.register_keras_serializable(package="spectralmix")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position: `y[:, i] = x[:, i] + P[i]`.

    Inputs up to `max_sequence_length` tokens use the first rows of `P` unchanged, so a
    token's position vector never depends on how much padding follows it. A longer input gets
    `P` resampled to its length by linear interpolation over normalised position (row `i` of
    `N` takes `P` at `i · (L - 1) / (N - 1)`), so nothing is truncated.

    A table with fewer rows than the positions it serves (`span = S > L`, e.g. 4,096 rows for
    a million tokens, so the parameters do not grow with the length): position `i < S` takes
    `P` at `i · (L - 1) / (S - 1)`, interpolated linearly between rows, whatever the input's
    length, so a token's position vector still never depends on what follows it (cached
    generation reads the same vectors, `positions`). Inputs longer than `S` get `P` resampled
    to their length as above.

    Args:
        max_sequence_length: number of learned positions `L` (rows of the table).
        initializer: initializer of `P`. Defaults to a truncated normal of stddev 0.02.
        span: number of positions `S >= L` the rows are spread over. Defaults to `L` (one row
            per position).
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

    def __init__(self, max_sequence_length, initializer=None, span=None, **kwargs):
        super().__init__(**kwargs)
        self.max_sequence_length = _checks.positive_int("max_sequence_length", max_sequence_length)
        self.span = _checks.positive_int("span", self.max_sequence_length if span is None else span)
        if self.span < self.max_sequence_length:
            raise ValueError(
                f"`span` must be at least the table's rows, `max_sequence_length` "
                f"({self.max_sequence_length}). Received: span={span}"
            )
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

    def positions(self, start, count):
        """The position vectors `(count, channels)` of positions `start .. start + count - 1`
        (all below `span`), as `call` adds them to an input of up to `span` tokens. `start`
        is a Python int or a scalar integer tensor; `count` a Python int or, for `start = 0`,
        a scalar tensor."""
        table = ops.convert_to_tensor(self.position_embeddings)  # a tensor before jax traces
        if self.span == self.max_sequence_length:
            return ops.slice(table, (start, 0), (count, table.shape[-1]))
        # The same float32 arithmetic for every (start, count): a position's vector is
        # bitwise the same in a full call and in a cached step.
        index = ops.cast(start, "float32") + ops.arange(0, count, dtype="float32")
        position = index * ((self.max_sequence_length - 1) / (self.span - 1))
        lower = ops.floor(position)
        weight = ops.cast(ops.expand_dims(position - lower, -1), table.dtype)
        lower = ops.cast(lower, "int32")
        upper = ops.minimum(lower + 1, self.max_sequence_length - 1)
        return (
            ops.take(table, lower, axis=0) * (1.0 - weight)
            + ops.take(table, upper, axis=0) * weight
        )

    def _positions(self, length):
        table = ops.convert_to_tensor(self.position_embeddings)  # a tensor before jax traces
        if length <= self.span:
            return self.positions(0, length)
        position = np.arange(length) * (self.max_sequence_length - 1) / (length - 1)
        lower = np.floor(position).astype("int32")
        upper = np.minimum(lower + 1, self.max_sequence_length - 1)
        weight = ops.convert_to_tensor((position - lower)[:, None], table.dtype)
        return (
            ops.take(table, lower, axis=0) * (1.0 - weight)
            + ops.take(table, upper, axis=0) * weight
        )

    def call(self, inputs):
        if sequence_parallel.process_communicator() is not None:  # one block of the tokens
            return sequence_parallel.shard_positions(self, inputs)
        length = inputs.shape[1]
        if length is None:
            # Length known only at run time (a TF graph): it must fit the span.
            positions = self.positions(0, ops.shape(inputs)[1])
        else:
            positions = self._positions(int(length))
        return inputs + ops.cast(positions, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "max_sequence_length": self.max_sequence_length,
            "span": self.span,
            "initializer": keras.initializers.serialize(self.initializer),
        }
