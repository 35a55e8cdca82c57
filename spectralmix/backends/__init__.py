"""Spectral cores behind one typed interface: the math written once, on `keras.ops`.

`keras_ops` is the core: tokens moved last, `keras.ops.rfft`/`irfft` with the orthonormal scale
folded in, and the filter and complex activation of `spectralmix.ops.filter_spectrum`. It serves
JAX, TensorFlow and every other Keras backend (numpy, openvino, ...): native JAX and TensorFlow
cores measured no faster and no leaner, paired in one process (`benchmarks/bench_shims.py`,
`docs/benchmarks.md`, "The spectral core decision"), and were removed. A framework keeps a
module here only for what measurably beats `keras_ops` on it: `torch` (the eager modReLU filter
with a hand-written backward, and FNet's real-input FFT). `dft` is the same core as matmuls.
Complex values never leave a module: inputs and outputs are real tensors of the active Keras
backend.

The module is chosen once per Keras backend, from `keras.config.backend()`, and imported on
first use, so an inactive framework is never imported.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Literal, Protocol

__all__ = [
    "BACKENDS",
    "FFT_IMPLS",
    "NATIVE_BACKENDS",
    "SpectralBackend",
    "get_backend",
    "spectral_core",
]

Tensor = Any
Activation = Literal["modrelu", "gelu"]

#: Keras backends with a framework of their own: each is imported, and has a pip extra, by its
#: name (the command line's `--backend`, `spectralmix.distribute`'s engines).
BACKENDS = ("jax", "tensorflow", "torch")
#: Keras backends with a module of their own here; every other backend uses `keras_ops`.
NATIVE_BACKENDS = ("torch",)
ACTIVATIONS = ("modrelu", "gelu")
#: How the layers compute their transforms: the framework's FFT, the DFT as matmuls
#: (`spectralmix.backends.dft`), or whichever measured faster for the length ("auto").
FFT_IMPLS = ("fft", "dft", "auto")


class SpectralBackend(Protocol):
    """The interface every spectral core implements (module-level functions)."""

    name: str

    def spectral_filter(
        self,
        x: Tensor,
        scale: Tensor,
        shift: Tensor,
        *,
        num_heads: int,
        activation: Activation,
        epsilon: float = 0.0,
    ) -> Tensor:
        """Filter `x` `(B, N, D)` per head in the frequency domain; returns `(B, N, D)`.

        `F = rfft(x, tokens, norm="ortho")` split into `num_heads` heads of `D / H` channels;
        `scale` and `shift` are real `(B or 1, H, N // 2 + 1)`, broadcast over a head's
        channels. `activation="modrelu"`: `Z = ReLU(|G| + shift) · G / max(|G|, epsilon)`
        with `G = F · scale` (`epsilon = 0`: the exact form, 0 at `G = 0`);
        `activation="gelu"`: `Z = GELU(|G|) · G / |G|` with `G = F · scale + shift`.
        Returns `irfft(Z, n=N, norm="ortho")` with heads merged. Finite values and gradients
        at `G = 0`.
        """
        ...

    def fourier_mixing(self, x: Tensor) -> Tensor:
        """FNet mixing: `Re(FFT2(x))` over tokens and channels of `(B, N, D)`, unnormalised."""
        ...


@functools.cache
def _load(module: str) -> SpectralBackend:
    return importlib.import_module(f"{__name__}.{module}")  # type: ignore[return-value]


def get_backend(name: str | None = None) -> SpectralBackend:
    """The spectral core for Keras backend `name` (default: the active one): its module in
    `NATIVE_BACKENDS`, else `keras_ops`.

    `name="keras_ops"` forces the `keras.ops` core on any backend; `name="dft"` the
    DFT-as-matmul core (no FFT op), also on `keras.ops`.
    """
    if name is None:
        import keras

        name = keras.config.backend()
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string. Received: name={name!r}")
    if name == "dft":
        return _load("dft")
    return _load(name if name in NATIVE_BACKENDS else "keras_ops")


@functools.cache
def _device_kind(backend: str) -> str:
    """`"cpu"`, `"gpu"` or `"tpu"`: where the active backend places computations by default."""
    if backend == "jax":
        import jax

        return jax.default_backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return "cpu"


def spectral_core(fft_impl: str, length: Any) -> SpectralBackend:
    """The core a layer with `fft_impl` uses for `length` tokens.

    `"fft"`: the active backend's FFT core; `"dft"`: the matmul core; `"auto"`: the matmul core
    when `length` is a Python int no longer than the crossover measured for this backend on
    CPU (`dft.CROSSOVER`), else the FFT core. With no measurement for the device (GPU, TPU) or
    a length only known at run time, `"auto"` keeps the FFT.
    """
    if fft_impl == "dft":
        return _load("dft")
    if fft_impl == "auto":
        import keras

        backend = keras.config.backend()
        crossover = _load("dft").CROSSOVER.get(backend, 0)
        static = isinstance(length, int) and not isinstance(length, bool)
        if static and length <= crossover and _device_kind(backend) == "cpu":
            return _load("dft")
    elif fft_impl != "fft":
        raise ValueError(
            f"`fft_impl` must be one of {list(FFT_IMPLS)}. Received: fft_impl={fft_impl!r}"
        )
    return get_backend()
