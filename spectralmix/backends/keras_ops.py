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

import keras
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
    re, im = filter_with_gradient(
        re, im, scale / root, shift, activation=activation, epsilon=epsilon, gain=root
    )
    return ops.irfft((re, im), fft_length=length)


def filter_with_gradient(
    re, im, scale, shift, *, activation: str = "modrelu", epsilon: float = 0.0, gain: Any = 1.0
):
    """`spectralmix.ops.filter_spectrum` with a hand-written gradient on JAX and TensorFlow
    (`keras.ops.custom_gradient`) that keeps only the spectrum and the filter for the backward:
    autodiff of the elementwise formula keeps half a dozen half-spectrum buffers (the
    magnitude, the activation's factor, quotients), each half the size of the spectrum, from
    the forward to the backward. Other backends differentiate the formula (PyTorch's eager
    modReLU has its own autograd function, `spectralmix.backends.torch`), and so do filters
    whose static shape is not known (TensorFlow graphs): the backward sums over the axes they
    were broadcast along. `gain` is a constant. `scale` and `shift` have the rank of `re`.
    """
    kwargs = {"activation": activation, "epsilon": epsilon, "gain": gain}
    static = None not in (*scale.shape, *shift.shape)
    if keras.backend.backend() not in ("jax", "tensorflow") or not static:
        return filter_spectrum(re, im, scale, shift, **kwargs)

    @ops.custom_gradient
    def filtered(re, im, scale, shift):
        def grad(*upstream):
            # JAX passes the cotangent of the output pair as one tuple, TensorFlow one per output.
            d_re, d_im = upstream[0] if len(upstream) == 1 else upstream
            # XLA on CPU drops optimization barriers before scheduling and computes whatever
            # does not depend on the cotangent as early as it can: the magnitude, the factor
            # and their quotients would be made in the forward and kept through the rest of
            # the model (the measured peak of a block). `0 · dZ[0]` makes them depend on the
            # cotangent, so they exist only here. (A non-finite `dZ[0]` makes every gradient
            # of the spectrum NaN; the inverse FFT after it spreads a non-finite entry to
            # every token anyway.)
            late = 0 * ops.reshape(d_re, (-1,))[0]
            return _filter_gradient(re + late, im + late, scale, shift, d_re, d_im, **kwargs)

        return filter_spectrum(re, im, scale, shift, **kwargs), grad

    return filtered(re, im, scale, shift)


def _sum_to(x: Tensor, shape: tuple) -> Tensor:
    """`x` summed over the axes that a tensor of `shape` (same rank) was broadcast along."""
    axes = tuple(
        i for i, (a, b) in enumerate(zip(shape, x.shape, strict=True)) if a == 1 and b != 1
    )
    return ops.sum(x, axis=axes, keepdims=True) if axes else x


def _filter_gradient(re, im, scale, shift, d_re, d_im, *, activation, epsilon, gain):
    """The backward of `filter_spectrum` from the spectrum `S = (re, im)`, the filter and the
    output's cotangent `dZ = (d_re, d_im)`; the same math as `torch._ModReLUFilter`.

    With `G = S · W` (`+ b` on the real part for "gelu"), `m = |G|` and `Z = ψ(m) · G`
    (`ψ = gain · φ`: `φ = relu(m + b) / max(m, ε)` for modReLU, `GELU(m) / m` for "gelu";
    `φ = 0` at `m = 0` in the exact forms), and `ρ = Re(conj(G) · dZ)`:
    `dG = ψ · dZ + (ψ'(m) ρ / m) · G`, `dS = W · dG`, `dW = Σ Re(conj(S) · dG)`, and
    `db = Σ gain · ρ · ∂φ/∂b` (modReLU: `1[m + b > 0] / max(m, ε)`) or `Σ Re(dG)` ("gelu"),
    the sums over the axes `W` and `b` were broadcast along. Where `m = 0` the gradient through
    `m` is 0, as autodiff of the `where`-guarded formula gives.
    """
    g_re, g_im = re * scale, im * scale
    if activation == "gelu":
        g_re = g_re + shift
    sq = g_re * g_re + g_im * g_im
    nonzero = sq > 0
    zero = ops.zeros_like(sq)
    safe = ops.sqrt(ops.where(nonzero, sq, ops.ones_like(sq)))  # m, 1 where m = 0
    rho = g_re * d_re + g_im * d_im
    if activation == "modrelu":
        mag = ops.where(nonzero, safe, zero)
        on = ops.cast(mag + shift > 0, sq.dtype)
        if epsilon == 0:
            inverse = ops.where(nonzero, 1 / safe, zero)
            slope = inverse  # d max(m, 0) / dm where m > 0
        else:
            above = mag > epsilon
            inverse = 1 / ops.where(above, mag, ops.cast(epsilon, sq.dtype))
            slope = ops.where(above, inverse, zero)
        phi = ops.relu(mag + shift) * inverse
        d_phi_d_shift = on * inverse
        d_phi = d_phi_d_shift - phi * slope  # φ'(m) = (1[m+b>0] − φ · d max(m, ε)/dm) / max(m, ε)
        grad_shift = gain * _sum_to(d_phi_d_shift * rho, tuple(shift.shape))
    else:
        phi = ops.where(nonzero, ops.gelu(safe, approximate=False) / safe, zero)
        # φ = GELU(m) / m = Φ(m) and GELU'(m) = Φ(m) + m · pdf(m), so
        # φ'(m) = (GELU'(m) − φ) / m = pdf(m), the standard normal density.
        d_phi = ops.exp(-0.5 * sq) * (1 / math.sqrt(2 * math.pi))
        grad_shift = None
    coefficient = ops.where(nonzero, gain * d_phi * rho / safe, zero)
    psi = phi * gain
    dg_re = psi * d_re + coefficient * g_re
    dg_im = psi * d_im + coefficient * g_im
    grad_scale = _sum_to(re * dg_re + im * dg_im, tuple(scale.shape))
    if grad_shift is None:
        grad_shift = _sum_to(dg_re, tuple(shift.shape))
    return dg_re * scale, dg_im * scale, grad_scale, grad_shift


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
