"""Stochastic depth (drop path) for residual branches."""

from __future__ import annotations

import keras
from keras import ops

from spectralmix.layers import _checks


@keras.saving.register_keras_serializable(package="spectralmix")
class DropPath(keras.layers.Layer):
    """Drops a residual branch for whole samples during training (stochastic depth).

    In training, each sample's input is zeroed with probability `rate` and otherwise scaled
    by `1 / (1 - rate)`, so the expectation is unchanged; at inference it is the identity.

    Args:
        rate: drop probability in `[0, 1)`.
        seed: optional integer seed of the layer's random generator.
        **kwargs: base `keras.layers.Layer` arguments.

    Input shape:
        Any shape `(batch, ...)`.

    Output shape:
        Same as the input.

    Examples:
        >>> import numpy as np
        >>> x = np.ones((4, 3), "float32")
        >>> bool((keras.ops.convert_to_numpy(DropPath(0.5)(x)) == x).all())  # inference
        True

    Reference:
        Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _checks.rate("rate", rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep_prob = 1.0 - self.rate
        batch = ops.shape(inputs)[0]
        noise_shape = (batch,) + (1,) * (len(inputs.shape) - 1)
        keep = keras.random.uniform(noise_shape, seed=self.seed_generator) < keep_prob
        return ops.where(keep, inputs / keep_prob, ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
