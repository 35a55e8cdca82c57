"""Input checks of the layers and their constants; the generic argument checks are
`spectralmix.validation`'s (re-exported here, so `_checks.positive_int` still works)."""

from __future__ import annotations

from typing import Any

import keras

from spectralmix.backends import FFT_IMPLS as FFT_IMPLS
from spectralmix.validation import boolean as boolean
from spectralmix.validation import choice as choice
from spectralmix.validation import legacy_default as legacy_default
from spectralmix.validation import non_negative_float as non_negative_float
from spectralmix.validation import optional_positive_int as optional_positive_int
from spectralmix.validation import positive_float as positive_float
from spectralmix.validation import positive_int as positive_int
from spectralmix.validation import rate as rate

#: FFTNet forms: "v1" is the paper; "v2" the authors' later code (see docs/layers.md).
VARIANTS = ("v1", "v2")

#: modReLU's denominator floor, `ReLU(|z| + b) · z / max(|z|, epsilon)`: the authors' v1 code
#: clamps `|z|` at 1e-3 (docs/layers.md, "Fidelity"). `0` is the exact form.
MODRELU_EPSILON = 1e-3


def sequence_shape(layer: str, input_shape: Any, num_heads: int | None = None) -> tuple:
    """Checks a `(batch, tokens, channels)` shape with known channels (divisible by heads)."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"{layer} expects inputs of rank 3, (batch, sequence_length, channels). "
            f"Received: input_shape={shape}"
        )
    channels = shape[-1]
    if channels is None:
        raise ValueError(
            f"{layer} needs a known number of channels (last axis). Received: input_shape={shape}"
        )
    if num_heads is not None and channels % num_heads:
        raise ValueError(
            f"{layer}: `num_heads` must divide the number of channels ({channels}). "
            f"Received: num_heads={num_heads}, input_shape={shape}"
        )
    return shape


def floating_input(layer: str, inputs: Any) -> None:
    dtype = keras.backend.standardize_dtype(inputs.dtype)
    if "float" not in dtype:
        raise ValueError(
            f"{layer} mixes real-valued features and needs floating-point inputs; embed token "
            f"ids first (e.g. keras.layers.Embedding). Received: inputs.dtype={dtype}"
        )


def island_dtype(policy: keras.DTypePolicy) -> str:
    """The dtype of the spectral island: float32 under mixed precision, else the layer's own.

    FFTs are never run in float16/bfloat16 (XLA, TF and cuFFT reject or restrict them).
    """
    return policy.variable_dtype
