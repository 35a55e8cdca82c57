"""The spectral core on `keras.ops`: what the layers run on JAX, TensorFlow and every backend
without a module of its own (numpy, openvino, ...).

`keras.ops.rfft` acts on the last axis with the unnormalised ("backward") convention, so the
tokens are moved last and the orthonormal scale is folded in: `1 / √N` into the filter (a
`(B, H, K)` tensor) and `√N` into the activation's real factor, so neither costs a pass over a
full-size tensor. The sequence length may be a tensor (TensorFlow graphs with run-time lengths).

Native JAX and TensorFlow cores measured no faster and no leaner than this one, paired in one
process (`benchmarks/bench_shims.py`, `docs/benchmarks.md`, "The spectral core decision"); the
filter and the activation are `spectralmix.ops.filter_spectrum`, the one copy every core runs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from keras import ops

from spectralmix.ops import filter_spectrum

name = "keras_ops"

Tensor = Any
#: `mix(xt, scale, shift, length)`: the tokens' transform, filter and inverse on `xt`
#: `(B, H, d, N)` with `scale`, `shift` `(B or 1, H, 1, K)`; returns `(B, H, d, N)`.
Mix = Callable[[Tensor, Tensor, Tensor, Any], Tensor]


def sequence_length(x: Tensor) -> Any:
    """`x.shape[1]` where it is known, else the run-time length as a scalar tensor."""
    return x.shape[1] if x.shape[1] is not None else ops.shape(x)[1]


def filter_per_head(x: Tensor, scale: Tensor, shift: Tensor, num_heads: int, mix: Mix) -> Tensor:
    """`(B, N, D)` → heads with the tokens last, `(B, H, D / H, N)` → `mix` → `(B, N, D)`; the
    filter `(B or 1, H, K)` is broadcast over a head's channels."""
    x = ops.convert_to_tensor(x)
    channels, length = x.shape[-1], sequence_length(x)
    xt = ops.reshape(ops.transpose(x, (0, 2, 1)), (-1, num_heads, channels // num_heads, length))
    scale = ops.expand_dims(ops.cast(scale, x.dtype), 2)
    shift = ops.expand_dims(ops.cast(shift, x.dtype), 2)
    mixed = mix(xt, scale, shift, length)
    return ops.transpose(ops.reshape(mixed, (-1, channels, length)), (0, 2, 1))


def _orthonormal_mix(xt, scale, shift, length, *, activation: str, epsilon: float):
    """rfft → `filter_spectrum` → irfft along the last axis, orthonormal."""
    if isinstance(length, int):
        root = math.sqrt(length)
    else:
        root = ops.sqrt(ops.cast(length, xt.dtype))
    re, im = ops.rfft(xt)
    re, im = filter_spectrum(
        re, im, scale / root, shift, activation=activation, epsilon=epsilon, gain=root
    )
    return ops.irfft((re, im), fft_length=length)


def spectral_filter(
    x, scale, shift, *, num_heads: int, activation: str = "modrelu", epsilon: float = 0.0
):
    """`SpectralBackend.spectral_filter` (see `spectralmix.backends`)."""
    mix = functools.partial(_orthonormal_mix, activation=activation, epsilon=epsilon)
    return filter_per_head(x, scale, shift, num_heads, mix)


def fourier_mixing(x):
    """`SpectralBackend.fourier_mixing`: `keras.ops.fft2` acts on the last two axes."""
    real, _ = ops.fft2((x, ops.zeros_like(x)))
    return real
