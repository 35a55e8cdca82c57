"""JAX spectral core: `jnp.fft` on native complex64/128 (compiles under `jax.jit`).

FFTs run along the tokens axis in place (measured faster under XLA than transposing so the
tokens are last; `benchmarks/bench_shims.py`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

name = "jax"


def _activate(spectrum: jax.Array, shift: jax.Array, activation: str) -> jax.Array:
    if activation == "gelu":
        spectrum = spectrum + shift
    sq = jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2
    nonzero = sq > 0
    mag = jnp.sqrt(jnp.where(nonzero, sq, 1.0))
    if activation == "modrelu":
        activated = jax.nn.relu(mag + shift)
    else:
        activated = jax.nn.gelu(mag, approximate=False)
    return spectrum * jnp.where(nonzero, activated / mag, 0.0)


def spectral_filter(x, scale, shift, *, num_heads: int, activation: str = "modrelu"):
    batch, length, channels = x.shape
    xh = jnp.reshape(x, (batch, length, num_heads, channels // num_heads))
    spectrum = jnp.fft.rfft(xh, axis=1, norm="ortho")  # (B, K, H, d)
    # (B, H, K) -> (B, K, H, 1): one value per (head, bin), shared by the head's channels.
    scale = jnp.swapaxes(jnp.asarray(scale), 1, 2)[..., None]
    shift = jnp.swapaxes(jnp.asarray(shift), 1, 2)[..., None]
    mixed = jnp.fft.irfft(
        _activate(spectrum * scale, shift, activation), n=length, axis=1, norm="ortho"
    )
    return jnp.reshape(mixed, (batch, length, channels))


def fourier_mixing(x):
    return jnp.real(jnp.fft.fft2(x, axes=(1, 2)))
