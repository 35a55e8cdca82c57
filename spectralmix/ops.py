"""Spectral building blocks written on `keras.ops`, shared by the layers and every spectral core.

Complex numbers are `(real, imag)` pairs of real tensors, as in `keras.ops.rfft`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

Tensor = Any


def _safe_magnitude(re: Tensor, im: Tensor) -> tuple[Tensor, Tensor]:
    # sqrt only ever sees positive values, so neither the value nor its gradient is NaN at z=0.
    sq = re * re + im * im
    nonzero = sq > 0
    mag = ops.sqrt(ops.where(nonzero, sq, ops.ones_like(sq)))
    return mag, nonzero


def _mod_relu_factor(re: Tensor, im: Tensor, bias: Tensor, epsilon: float) -> Tensor:
    """`ReLU(|z| + b) / max(|z|, epsilon)`, 0 at `z = 0` when `epsilon = 0`."""
    mag, nonzero = _safe_magnitude(re, im)
    if epsilon == 0:
        return ops.where(nonzero, ops.relu(mag + bias) / mag, ops.zeros_like(mag))
    mag = ops.where(nonzero, mag, ops.zeros_like(mag))
    # max(mag, epsilon) as a `where` with epsilon cast: on torch, Keras 3.15's `maximum` of
    # float64 tensors returns float32, and a Python float operand is rounded to float32.
    return ops.relu(mag + bias) / ops.where(mag > epsilon, mag, ops.cast(epsilon, mag.dtype))


def _gelu_factor(re: Tensor, im: Tensor) -> Tensor:
    """`GELU(|z|) / |z|`, 0 at `z = 0`."""
    mag, nonzero = _safe_magnitude(re, im)
    return ops.where(nonzero, ops.gelu(mag, approximate=False) / mag, ops.zeros_like(mag))


def mod_relu(re: Tensor, im: Tensor, bias: Tensor, epsilon: float = 0.0) -> tuple[Tensor, Tensor]:
    """Complex modReLU `ReLU(|z| + b) · z / max(|z|, epsilon)`, finite gradients everywhere.

    `epsilon = 0`: the exact form, 0 at `z = 0`. `epsilon > 0`: the authors' clamped
    denominator, `z · ReLU(|z| + b) / epsilon` below `|z| = epsilon`, whose Jacobian is bounded
    by `2 + max(b, 0) / epsilon` (see `spectralmix.reference.mod_relu`).
    """
    factor = _mod_relu_factor(re, im, bias, epsilon)
    return re * factor, im * factor


def gelu_magnitude(re: Tensor, im: Tensor) -> tuple[Tensor, Tensor]:
    """`GELU(|z|) · z / |z|` (0 at `z = 0`): the activation of the authors' later FFTNet code."""
    factor = _gelu_factor(re, im)
    return re * factor, im * factor


def filter_spectrum(
    re: Tensor,
    im: Tensor,
    scale: Tensor,
    shift: Tensor,
    *,
    activation: str = "modrelu",
    epsilon: float = 0.0,
    gain: Any = 1.0,
) -> tuple[Tensor, Tensor]:
    """The spectral filter and its complex activation, on a spectrum `F = (re, im)`.

    `activation="modrelu"`: `Z = mod_relu(G, shift, epsilon)` with `G = F · scale`;
    `activation="gelu"`: `Z = gelu_magnitude(G)` with `G = F · scale + shift`. Returns
    `gain · Z` (`gain`, a scalar, folds a transform's normalisation into the activation's real
    factor instead of a pass over the output). `scale` and `shift` broadcast against `re`.
    Every spectral core runs this one function (`spectralmix.backends`).
    """
    re, im = re * scale, im * scale
    if activation == "modrelu":
        factor = _mod_relu_factor(re, im, shift, epsilon)
    elif activation == "gelu":
        re = re + shift
        factor = _gelu_factor(re, im)
    else:
        raise ValueError(
            f"`activation` must be 'modrelu' or 'gelu'. Received: activation={activation!r}"
        )
    if not (isinstance(gain, (int, float)) and gain == 1):
        factor = factor * gain
    return re * factor, im * factor


def _static_interpolation(length: int, max_length: int) -> tuple[np.ndarray, ...]:
    num_max_bins = max_length // 2 + 1
    k = np.arange(length // 2 + 1, dtype=np.int64)
    lower, remainder = np.divmod(k * max_length, length)
    beyond = lower >= num_max_bins - 1
    index0 = np.where(beyond, num_max_bins - 1, lower)
    index1 = np.where(beyond, num_max_bins - 1, lower + 1)
    weight = np.where(beyond, 0.0, remainder / length)
    return index0.astype("int32"), index1.astype("int32"), weight


def resample_spectrum(values: Tensor, length: Any, max_length: int) -> Tensor:
    """Resample per-bin `values` (last axis, `max_length // 2 + 1` bins) to `length` tokens.

    Bin `k` of a length-`length` transform sits at normalised frequency `k / length`; it gets
    the linear interpolation of `values` at that frequency (bins `j / max_length`), clamped to
    the last bin. The identity when `length == max_length`. `length` may be a Python int or,
    for shapes only known at run time, a scalar integer tensor; positions use integer
    arithmetic (`divmod(k * max_length, length)`) so no rounding shifts a bin.
    """
    if isinstance(length, (int, np.integer)):
        if int(length) == max_length:
            return ops.convert_to_tensor(values)
        index0, index1, weight = _static_interpolation(int(length), max_length)
        weight = ops.convert_to_tensor(weight, dtype=values.dtype)
    else:
        num_max_bins = max_length // 2 + 1
        length = ops.cast(length, "int64")
        k = ops.arange(0, length // 2 + 1, dtype="int64")
        lower = (k * max_length) // length
        remainder = (k * max_length) - lower * length
        beyond = lower >= num_max_bins - 1
        index0 = ops.where(beyond, num_max_bins - 1, lower)
        index1 = ops.where(beyond, num_max_bins - 1, lower + 1)
        weight = ops.where(
            beyond, 0.0, ops.cast(remainder, values.dtype) / ops.cast(length, values.dtype)
        )
        weight = ops.cast(weight, values.dtype)
    return (
        ops.take(values, index0, axis=-1) * (1.0 - weight)
        + ops.take(values, index1, axis=-1) * weight
    )


def masked_mean_tokens(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over axis 1; with a mask, over the real tokens only (0 for an all-padding row)."""
    if mask is None:
        return ops.mean(x, axis=1)
    m = ops.expand_dims(ops.cast(mask, x.dtype), -1)
    count = ops.maximum(ops.sum(m, axis=1), 1.0)
    return ops.sum(x * m, axis=1) / count
