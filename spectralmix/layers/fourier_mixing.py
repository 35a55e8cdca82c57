"""FNet's parameter-free Fourier token mixing."""

from __future__ import annotations

from types import MappingProxyType

import keras
from keras import ops

from spectralmix import sequence_parallel
from spectralmix.backends import spectral_core
from spectralmix.layers import _checks


@keras.saving.register_keras_serializable(package="spectralmix")
class FourierMixing(keras.layers.Layer):
    """FNet token mixing: the real part of the 2-D DFT over tokens and channels.

    `y = Re(FFT_tokens(FFT_channels(x)))`, unnormalised as in the FNet paper. It has no
    weights. The FFT runs in float32 under mixed precision and the result is cast back.

    Masks: padded tokens are zeroed before the transform and padded outputs are zero, so what
    sits at padded positions never changes the outputs (the outputs do depend on the padded
    length, as for any FFT over a zero-padded sequence).

    Args:
        fft_impl: `"fft"` (the framework's FFT, default), `"dft"` (matmuls against cos/sin
            matrices of the run-time length: the same function, no FFT op) or `"auto"` (the
            DFT up to the length measured faster on this backend's CPU); see
            `AdaptiveSpectralFilter`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape:
        `(batch, sequence_length, channels)`, floating point.

    Output shape:
        Same as the input.

    Call arguments:
        inputs: the token features.
        mask: optional boolean `(batch, sequence_length)` padding mask.

    Examples:
        >>> import numpy as np
        >>> y = FourierMixing()(np.ones((1, 4, 2), "float32"))
        >>> keras.ops.convert_to_numpy(y)[0].tolist()  # all energy in the DC bin
        [[8.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]

    Reference:
        Lee-Thorp et al., "FNet: Mixing Tokens with Fourier Transforms", NAACL 2022,
        arXiv:2105.03824.
    """

    causal = False
    model_parallel_layout = MappingProxyType({})  # no weights

    def __init__(self, fft_impl="fft", **kwargs):
        super().__init__(**kwargs)
        self.fft_impl = _checks.choice("fft_impl", fft_impl, _checks.FFT_IMPLS)
        self.supports_masking = True

    def build(self, input_shape):
        _checks.sequence_shape("FourierMixing", input_shape)

    def call(self, inputs, mask=None, training=None):
        if sequence_parallel.is_active():  # tokens sharded over devices
            return sequence_parallel.sharded_call(self, inputs, mask)
        _checks.floating_input("FourierMixing", inputs)
        x = ops.cast(inputs, _checks.island_dtype(self.dtype_policy))
        if mask is not None:
            token_weight = ops.expand_dims(ops.cast(mask, x.dtype), -1)
            x = x * token_weight
        length = x.shape[1] if x.shape[1] is not None else ops.shape(x)[1]
        y = spectral_core(self.fft_impl, length).fourier_mixing(x)
        if mask is not None:
            y = y * token_weight
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "fft_impl": self.fft_impl}

    @staticmethod
    def count_parameters(channels, arguments):
        """No weights, at any length."""
        return 0

    @staticmethod
    def count_flops(tally, tokens, channels, arguments):
        """Complex FFTs along the channels, then along the tokens, and the real part."""
        from spectralmix import flops

        tally.add("fft", tokens * flops.fft_cost(flops.COMPLEX_FFT_COEFFICIENT, channels))
        tally.add("fft", channels * flops.fft_cost(flops.COMPLEX_FFT_COEFFICIENT, tokens))
        tally.add("fft", flops.REAL_PART_PER_ELEMENT * tokens * channels)
