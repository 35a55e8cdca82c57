"""Complex modReLU on (real, imag) pairs."""

from __future__ import annotations

import keras
from keras import ops

from spectralmix import ops as spectral_ops
from spectralmix.layers import _checks


@keras.saving.register_keras_serializable(package="spectralmix")
class ModReLU(keras.layers.Layer):
    """Complex modReLU with a learnable bias, on complex values given as (real, imag) pairs.

    `modReLU(z) = ReLU(|z| + b) · z / max(|z|, epsilon)`. It keeps a value's phase and shrinks
    its magnitude by `-b` (a soft threshold) wherever `|z| >= epsilon`. Below `epsilon` it is
    `z · ReLU(|z| + b) / epsilon` (the authors' FFTNet code clamps `|z|` at 1e-3): continuous,
    linear at the origin, and its gradient is bounded by `2 + max(b, 0) / epsilon`. With
    `epsilon=0` it is the exact form, `0` where `z = 0`, whose gradient grows as `b / |z|` near
    zero when `b > 0`. Never `angle()`, never a bare `/|z|`: values and gradients are finite at
    `z = 0` on every backend either way.

    Args:
        epsilon: floor of the magnitude in the denominator, `>= 0`. Defaults to `1e-3`, the
            authors' value; `0` selects the exact form.
        bias_initializer: initializer of the bias `b`, one value per feature (last axis).
            Defaults to `-0.1`, FFTNet's initial value.
        bias_regularizer: optional regularizer of the bias.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape:
        A list `[real, imag]` of two tensors of the same shape `(..., features)`.

    Output shape:
        A list `[real, imag]` of the input shape.

    Examples:
        >>> import numpy as np
        >>> layer = ModReLU(epsilon=0.0, bias_initializer="zeros")
        >>> re, im = layer([np.array([[3.0, 0.0]]), np.array([[4.0, 0.0]])])
        >>> [float(v) for v in keras.ops.convert_to_numpy(re)[0]]
        [3.0, 0.0]

    Reference:
        Arjovsky, Shah & Bengio, "Unitary Evolution Recurrent Neural Networks", ICML 2016.
    """

    def __init__(
        self,
        epsilon=_checks.MODRELU_EPSILON,
        bias_initializer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.epsilon = _checks.non_negative_float("epsilon", epsilon)
        self.bias_initializer = keras.initializers.get(
            bias_initializer if bias_initializer is not None else keras.initializers.Constant(-0.1)
        )
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.supports_masking = True

    @staticmethod
    def _check_pair(inputs, is_shape=False):
        pair = isinstance(inputs, (list, tuple)) and len(inputs) == 2
        if pair and is_shape:
            pair = all(isinstance(s, (list, tuple)) for s in inputs)
        if not pair:
            what = "input_shape" if is_shape else "inputs"
            received = inputs if is_shape else type(inputs).__name__
            raise ValueError(
                "ModReLU expects a list [real, imag] of two tensors of the same shape. "
                f"Received: {what}={received!r}"
            )

    def build(self, input_shape):
        self._check_pair(input_shape, is_shape=True)
        real_shape, imag_shape = (tuple(s) for s in input_shape)
        if real_shape != imag_shape:
            raise ValueError(
                "ModReLU: real and imaginary parts must have the same shape. "
                f"Received: input_shape={[real_shape, imag_shape]}"
            )
        if not real_shape or real_shape[-1] is None:
            raise ValueError(
                f"ModReLU needs a known last axis (features). Received: input_shape={real_shape}"
            )
        self.bias = self.add_weight(
            name="bias",
            shape=(real_shape[-1],),
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
            autocast=False,
        )

    def call(self, inputs):
        self._check_pair(inputs)
        dtype = _checks.island_dtype(self.dtype_policy)
        for part in inputs:
            _checks.floating_input("ModReLU", part)
        re, im = (ops.cast(part, dtype) for part in inputs)
        re, im = spectral_ops.mod_relu(re, im, ops.cast(self.bias, dtype), self.epsilon)
        return [ops.cast(re, self.compute_dtype), ops.cast(im, self.compute_dtype)]

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return [tuple(s) for s in input_shape]

    def get_config(self):
        return {
            **super().get_config(),
            "epsilon": self.epsilon,
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }

    @classmethod
    def from_config(cls, config):
        # Saved before `epsilon` existed: the exact form it was trained with.
        return super().from_config(_checks.legacy_default(config, "epsilon", 0.0))
