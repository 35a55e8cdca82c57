"""Portable spectral core on `keras.ops`: the fallback for backends with no native module.

`keras.ops.rfft` acts on the last axis with the unnormalised ("backward") convention, so the
tokens are moved last and the orthonormal scale is folded into the filter. It is the readable
reference of what the native modules fuse, and serves numpy, openvino and any later backend.
"""

from __future__ import annotations

from keras import ops

from spectralmix.ops import gelu_magnitude, mod_relu

name = "keras_ops"


def spectral_filter(
    x, scale, shift, *, num_heads: int, activation: str = "modrelu", epsilon: float = 0.0
):
    batch, length, channels = ops.shape(x)
    xt = ops.reshape(ops.transpose(x, (0, 2, 1)), (batch, num_heads, channels // num_heads, length))
    re, im = ops.rfft(xt)  # (B, H, d, K)
    norm = 1.0 / float(length) ** 0.5
    scale = ops.expand_dims(ops.cast(scale, x.dtype), 2) * norm
    shift = ops.expand_dims(ops.cast(shift, x.dtype), 2)
    re, im = re * scale, im * scale
    if activation == "modrelu":
        re, im = mod_relu(re, im, shift, epsilon)
    else:
        re, im = gelu_magnitude(re + shift, im)
    mixed = ops.irfft((re, im), fft_length=length) * (float(length) ** 0.5)
    return ops.transpose(ops.reshape(mixed, (batch, channels, length)), (0, 2, 1))


def fourier_mixing(x):
    real, _ = ops.fft2((x, ops.zeros_like(x)))
    return real
