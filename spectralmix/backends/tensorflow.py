"""TensorFlow spectral core: `tf.signal` FFTs.

`tf.signal.rfft` has no `axis` and no `norm`: tokens are moved to the last axis and the
orthonormal scale is folded into the filter. The elementwise work runs on the real and
imaginary parts as float tensors, which measured ~1.5x faster than complex arithmetic on CPU
(`benchmarks/bench_shims.py`). Sequence lengths may be unknown until run time.
"""

from __future__ import annotations

import tensorflow as tf

name = "tensorflow"


def spectral_filter(
    x, scale, shift, *, num_heads: int, activation: str = "modrelu", epsilon: float = 0.0
):
    x = tf.convert_to_tensor(x)
    shape = tf.shape(x)
    batch, length = shape[0], shape[1]
    channels = x.shape[-1]
    xt = tf.reshape(tf.transpose(x, (0, 2, 1)), (batch, num_heads, channels // num_heads, length))
    spectrum = tf.signal.rfft(xt)  # (B, H, d, K), unnormalised
    norm = tf.math.rsqrt(tf.cast(length, x.dtype))
    scale = tf.convert_to_tensor(scale, x.dtype)[:, :, None, :] * norm
    shift = tf.convert_to_tensor(shift, x.dtype)[:, :, None, :]
    re = tf.math.real(spectrum) * scale
    im = tf.math.imag(spectrum) * scale
    if activation == "gelu":
        re = re + shift
    sq = re * re + im * im
    nonzero = sq > 0
    mag = tf.sqrt(tf.where(nonzero, sq, tf.ones_like(sq)))
    if activation == "gelu":
        factor = tf.where(nonzero, tf.nn.gelu(mag, approximate=False) / mag, tf.zeros_like(mag))
    elif epsilon == 0:
        factor = tf.where(nonzero, tf.nn.relu(mag + shift) / mag, tf.zeros_like(mag))
    else:
        mag = tf.where(nonzero, mag, tf.zeros_like(mag))
        factor = tf.nn.relu(mag + shift) / tf.maximum(mag, epsilon)
    mixed = tf.signal.irfft(tf.complex(re * factor, im * factor), fft_length=[length])
    mixed = mixed * tf.math.sqrt(tf.cast(length, x.dtype))
    return tf.transpose(tf.reshape(mixed, (batch, channels, length)), (0, 2, 1))


def fourier_mixing(x):
    x = tf.convert_to_tensor(x)
    complex_dtype = tf.complex128 if x.dtype == tf.float64 else tf.complex64
    return tf.math.real(tf.signal.fft2d(tf.cast(x, complex_dtype)))
