"""JAX spectral core: `jnp.fft` FFTs (compile under `jax.jit`), elementwise work on real arrays.

Tokens are moved to the last axis and the filter and modReLU run on the real and imaginary
parts as float arrays: measured faster forward+backward under XLA:CPU than complex arithmetic
along the tokens axis (`benchmarks/bench_shims.py`, docs/backends.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

name = "jax"


def spectral_filter(
    x, scale, shift, *, num_heads: int, activation: str = "modrelu", epsilon: float = 0.0
):
    batch, length, channels = x.shape
    xt = jnp.reshape(jnp.swapaxes(x, 1, 2), (batch, num_heads, channels // num_heads, length))
    spectrum = jnp.fft.rfft(xt, axis=-1, norm="ortho")  # (B, H, d, K)
    scale = jnp.asarray(scale)[:, :, None, :]
    shift = jnp.asarray(shift)[:, :, None, :]
    re = jnp.real(spectrum) * scale
    im = jnp.imag(spectrum) * scale
    if activation == "gelu":
        re = re + shift
    sq = re * re + im * im
    nonzero = sq > 0
    # sqrt and the division only ever see nonzero values: finite gradients at z = 0.
    mag = jnp.sqrt(jnp.where(nonzero, sq, 1.0))
    if activation == "gelu":
        factor = jnp.where(nonzero, jax.nn.gelu(mag, approximate=False) / mag, 0.0)
    elif epsilon == 0:
        factor = jnp.where(nonzero, jax.nn.relu(mag + shift) / mag, 0.0)
    else:
        mag = jnp.where(nonzero, mag, 0.0)
        factor = jax.nn.relu(mag + shift) / jnp.maximum(mag, epsilon)
    mixed = jnp.fft.irfft(
        jax.lax.complex(re * factor, im * factor), n=length, axis=-1, norm="ortho"
    )
    return jnp.swapaxes(jnp.reshape(mixed, (batch, channels, length)), 1, 2)


def fourier_mixing(x):
    return jnp.real(jnp.fft.fft2(x, axes=(1, 2)))
