"""A learned class token prepended to a token sequence."""

from __future__ import annotations

import keras
from keras import ops

from spectralmix.layers import _checks


@keras.saving.register_keras_serializable(package="spectralmix")
class ClassToken(keras.layers.Layer):
    """Prepends one learned token: `(B, N, D) -> (B, N + 1, D)`.

    A padding mask is extended with `True` for the class token, which is always real.

    Args:
        initializer: initializer of the token. Defaults to zeros (as ViT).
        **kwargs: base `keras.layers.Layer` arguments.

    Input shape:
        `(batch, sequence_length, channels)`.

    Output shape:
        `(batch, sequence_length + 1, channels)`.

    Examples:
        >>> import numpy as np
        >>> y = ClassToken(initializer="ones")(np.zeros((2, 3, 4), "float32"))
        >>> tuple(y.shape), float(keras.ops.convert_to_numpy(y)[0, 0, 0])
        ((2, 4, 4), 1.0)
    """

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def build(self, input_shape):
        shape = _checks.sequence_shape("ClassToken", input_shape)
        self.token = self.add_weight(
            name="token", shape=(1, 1, shape[-1]), initializer=self.initializer
        )

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        token = ops.broadcast_to(ops.cast(self.token, inputs.dtype), (batch, 1, inputs.shape[-1]))
        return ops.concatenate([token, inputs], axis=1)

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        real = ops.ones_like(mask[:, :1], dtype="bool")
        return ops.concatenate([real, ops.cast(mask, "bool")], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])

    def get_config(self):
        return {
            **super().get_config(),
            "initializer": keras.initializers.serialize(self.initializer),
        }
