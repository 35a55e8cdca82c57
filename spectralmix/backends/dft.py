"""The spectral core as real matrix products (DFT-as-matmul), written once on `keras.ops`.

No FFT op appears anywhere: the real DFT of the tokens is a product with a `(2K, N)` matrix of
cosines and sines, and its inverse a product with an `(N, 2K)` one, both built for the actual
run-time length `N` (`K = N // 2 + 1`), with the orthonormal scale folded in. It computes the
same function as the FFT cores at every length, odd or even (no pad-then-crop), so it serves:

- export to runtimes with no (or no usable) FFT op: ONNX through tf2onnx, LiteRT, plain ONNX
  `MatMul` from the torch exporter (`spectralmix.export` switches models to it);
- short sequences, where two small matmuls beat an FFT (`fft_impl="auto"`, see
  `CROSSOVER` and `benchmarks/bench_dft.py`).

The inverse uses the Hermitian symmetry of a real signal's spectrum:
`y[n] = (1/√N) Σ_k w_k (Re Z_k cos(2πkn/N) − Im Z_k sin(2πkn/N))` with `w_0 = 1`, `w_{N/2} = 1`
for even `N` and `w_k = 2` otherwise, which is what `irfft(Z, n=N, norm="ortho")` computes
(the imaginary parts of the DC and Nyquist bins drop out, as they do in `irfft`).

Cost: `O(N² D)` multiply-adds per sequence against `O(N log N · D)` for the FFT, so it pays
only for short sequences or where no FFT exists.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import keras
import numpy as np
from keras import ops

from spectralmix.backends.keras_ops import sequence_length
from spectralmix.ops import filter_spectrum

name = "dft"

Tensor = Any

#: Longest sequence for which `fft_impl="auto"` picks this core over the backend's FFT core, per
#: Keras backend, on CPU: the measured crossover of forward time (`python
#: benchmarks/bench_dft.py` → `benchmarks/results/dft-cpu.json`; shared 2-core x86 CPU, batch 8,
#: 64 channels, 4 heads, minimum of 25 alternating rounds). DFT/FFT ms at 32 / 64 / 128 tokens:
#: jax 0.13/0.14, 0.25/0.24, 1.07/0.73; tensorflow 0.70/0.86, 0.83/1.12, 1.76/1.71; torch (eager)
#: 0.67/0.27, 0.83/0.39, 1.28/0.56 (the FFT wins from 8 tokens). Earlier runs under other load
#: put the jax crossover at 16-48 and tensorflow's at 64-128: the numbers are this machine's.
CROSSOVER = {"jax": 32, "tensorflow": 64, "torch": 0}


def _is_static(length: Any) -> bool:
    return isinstance(length, (int, np.integer))


@functools.lru_cache(maxsize=32)
def _static_rdft(length: int) -> tuple[np.ndarray, np.ndarray]:
    """`(forward (2K, N), inverse (N, 2K))` in float64, angles reduced exactly mod `N`."""
    num_bins = length // 2 + 1
    k = np.arange(num_bins)[:, None]
    n = np.arange(length)[None, :]
    angle = (2.0 * np.pi / length) * ((k * n) % length)  # integer reduction: no large angles
    cos, sin = np.cos(angle) / math.sqrt(length), np.sin(angle) / math.sqrt(length)
    weight = np.full((num_bins, 1), 2.0)
    weight[0] = 1.0
    if length % 2 == 0:
        weight[-1] = 1.0
    forward = np.concatenate([cos, -sin], axis=0)
    inverse = np.concatenate([weight * cos, -weight * sin], axis=0).T
    return forward, inverse


def _dynamic_rdft(length: Tensor, dtype: str) -> tuple[Tensor, Tensor]:
    """The matrices of `_static_rdft` built in the graph, for a length only known at run time."""
    length = ops.cast(length, "int32")
    k = ops.expand_dims(ops.arange(0, length // 2 + 1, dtype="int32"), 1)
    n = ops.expand_dims(ops.arange(0, length, dtype="int32"), 0)
    phase = ops.mod(k * n, length)  # exact integer reduction, then one rounding to float
    size = ops.cast(length, dtype)
    angle = ops.cast(phase, dtype) * (2.0 * math.pi) / size
    norm = ops.rsqrt(size)
    cos, sin = ops.cos(angle) * norm, ops.sin(angle) * norm
    edge = ops.logical_or(ops.equal(k, 0), ops.equal(2 * k, length))
    weight = ops.cast(ops.where(edge, 1, 2), dtype)
    forward = ops.concatenate([cos, -sin], axis=0)
    inverse = ops.transpose(ops.concatenate([weight * cos, -weight * sin], axis=0))
    return forward, inverse


def rdft_matrices(length: Any, dtype: str = "float32") -> tuple[Tensor, Tensor]:
    """The orthonormal real-DFT matrices of `length` tokens: `forward` `(2K, N)` maps a real
    signal to `[Re F; Im F]` (`F = rfft(x, norm="ortho")`) and `inverse` `(N, 2K)` maps
    `[Re Z; Im Z]` to `irfft(Z, n=N, norm="ortho")`. `length` is a Python int (constants,
    computed in float64) or a scalar integer tensor (built in the graph)."""
    if _is_static(length):
        forward, inverse = _static_rdft(int(length))
        return ops.convert_to_tensor(forward, dtype), ops.convert_to_tensor(inverse, dtype)
    return _dynamic_rdft(length, dtype)


def _matmul(a: Tensor, b: Tensor, subscripts: str) -> Tensor:
    """`ops.matmul`, except float64 on torch: there Keras 3.15 computes `matmul` in float32
    (its result type maps float64 to float32), while `einsum` keeps float64."""
    if keras.config.backend() == "torch" and keras.backend.standardize_dtype(a.dtype) == "float64":
        return ops.einsum(subscripts, a, b)
    return ops.matmul(a, b)


def _length_and_bins(x: Tensor) -> tuple[Any, Any]:
    length = sequence_length(x)
    return length, length // 2 + 1


def spectral_filter(
    x, scale, shift, *, num_heads: int, activation: str = "modrelu", epsilon: float = 0.0
):
    """`SpectralBackend.spectral_filter` as two matmuls (see the module docstring)."""
    x = ops.convert_to_tensor(x)
    dtype = x.dtype
    channels = x.shape[-1]
    length, num_bins = _length_and_bins(x)
    forward, inverse = rdft_matrices(length, dtype)
    spectrum = _matmul(forward, x, "kn,bnd->bkd")  # (B, 2K, D): real parts, then imaginary
    head_shape = (-1, num_bins, num_heads, channels // num_heads)
    re = ops.reshape(spectrum[:, :num_bins], head_shape)
    im = ops.reshape(spectrum[:, num_bins:], head_shape)
    # (S, H, K) -> (S, K, H, 1): one value per (head, bin), broadcast over a head's channels.
    scale = ops.expand_dims(ops.transpose(ops.cast(scale, dtype), (0, 2, 1)), -1)
    shift = ops.expand_dims(ops.transpose(ops.cast(shift, dtype), (0, 2, 1)), -1)
    re, im = filter_spectrum(re, im, scale, shift, activation=activation, epsilon=epsilon)
    merged = ops.concatenate(
        [ops.reshape(re, (-1, num_bins, channels)), ops.reshape(im, (-1, num_bins, channels))],
        axis=1,
    )
    return _matmul(inverse, merged, "nk,bkd->bnd")


@functools.lru_cache(maxsize=32)
def _static_dft(length: int) -> tuple[np.ndarray, np.ndarray]:
    """`(cos, sin)` of the full, unnormalised `length`-point DFT, float64, symmetric."""
    index = np.arange(length)
    angle = (2.0 * np.pi / length) * ((index[:, None] * index[None, :]) % length)
    return np.cos(angle), np.sin(angle)


def _dft(length: Any, dtype: str) -> tuple[Tensor, Tensor]:
    if _is_static(length):
        cos, sin = _static_dft(int(length))
        return ops.convert_to_tensor(cos, dtype), ops.convert_to_tensor(sin, dtype)
    length = ops.cast(length, "int32")
    index = ops.arange(0, length, dtype="int32")
    phase = ops.mod(ops.expand_dims(index, 1) * ops.expand_dims(index, 0), length)
    angle = ops.cast(phase, dtype) * (2.0 * math.pi) / ops.cast(length, dtype)
    return ops.cos(angle), ops.sin(angle)


def fourier_mixing(x):
    """`Re(FFT2(x))` over tokens and channels as matmuls: `C_N x C_D − S_N x S_D`."""
    x = ops.convert_to_tensor(x)
    dtype = x.dtype
    length, _ = _length_and_bins(x)
    cos_n, sin_n = _dft(length, dtype)
    cos_d, sin_d = _dft(int(x.shape[-1]), dtype)
    left = "mn,bnd->bmd"
    right = "bnd,de->bne"
    return _matmul(_matmul(cos_n, x, left), cos_d, right) - _matmul(
        _matmul(sin_n, x, left), sin_d, right
    )
