"""Spectral cores, one thin module per framework, behind one typed interface.

`keras.ops` FFTs work on the last axis only, with a fixed norm and complex numbers as
`(real, imag)` pairs; that costs speed (see `docs/backends.md`). Each module here runs the
spectral core — rfft → per-(head, bin) filter → complex activation → irfft — on its framework's
native complex dtype. Complex values never leave a module: inputs and outputs are real tensors
of the active Keras backend.

The module is chosen once per Keras backend, from `keras.config.backend()`, and imported on
first use, so an inactive framework is never imported. Any other backend (numpy, openvino)
gets `keras_ops`, the readable reference written on `keras.ops`.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Literal, Protocol

__all__ = ["NATIVE_BACKENDS", "SpectralBackend", "get_backend"]

Tensor = Any
Activation = Literal["modrelu", "gelu"]

#: Keras backends that have a native module; every other backend uses `keras_ops`.
NATIVE_BACKENDS = ("jax", "tensorflow", "torch")
ACTIVATIONS = ("modrelu", "gelu")


class SpectralBackend(Protocol):
    """The interface every spectral core implements (module-level functions)."""

    name: str

    def spectral_filter(
        self, x: Tensor, scale: Tensor, shift: Tensor, *, num_heads: int, activation: Activation
    ) -> Tensor:
        """Filter `x` `(B, N, D)` per head in the frequency domain; returns `(B, N, D)`.

        `F = rfft(x, tokens, norm="ortho")` split into `num_heads` heads of `D / H` channels;
        `scale` and `shift` are real `(B or 1, H, N // 2 + 1)`, broadcast over a head's
        channels. `activation="modrelu"`: `Z = modReLU(F · scale)` with bias `shift`;
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
    """The spectral core for Keras backend `name` (default: the active one).

    `name="keras_ops"` forces the portable `keras.ops` implementation on any backend.
    """
    if name is None:
        import keras

        name = keras.config.backend()
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string. Received: name={name!r}")
    return _load(name if name in NATIVE_BACKENDS else "keras_ops")
