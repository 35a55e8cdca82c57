"""Input checks of the layers and their constants; the generic argument checks are
`spectralmix.validation`'s (re-exported here, so `_checks.positive_int` still works)."""

from __future__ import annotations

from typing import Any

import keras

from spectralmix.backends import FFT_IMPLS as FFT_IMPLS
from spectralmix.validation import boolean as boolean
from spectralmix.validation import choice as choice
from spectralmix.validation import integer as integer
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

#: The most frequency bins a spectral filter (`AdaptiveSpectralFilter`, `GlobalFilter`) gets
#: by default: `min(max_sequence_length // 2 + 1, DEFAULT_MAX_FILTER_BINS)`. Every length up
#: to 4,096 keeps the paper's exact filter, one value per bin of its own length; a longer one
#: gets 2,049 bins resampled to its length, so its parameters stop growing with the length.
DEFAULT_MAX_FILTER_BINS = 2049


def optional_filter_bins(value: Any) -> int | None:
    """`filter_bins` checked: `None` or an integer `>= 2` (a DC and one more bin)."""
    if value is None:
        return None
    return integer("filter_bins", value, minimum=2)


def filter_grid(filter_bins: int | None, max_sequence_length: int | None) -> tuple[int, int]:
    """`(filter_length, filter_bins)`: the grid a spectral filter is defined on.

    The filter holds `filter_bins` values `K` at the normalised frequencies `j / L_f`,
    `j = 0 .. K - 1`, for a filter length `L_f` with `L_f // 2 + 1 = K`, and is resampled to
    any input length from there (`spectralmix.ops.resample_spectrum`). `filter_bins=None`
    takes `min(max_sequence_length // 2 + 1, DEFAULT_MAX_FILTER_BINS)`. `L_f` is
    `max_sequence_length` when `K = max_sequence_length // 2 + 1` (the paper's exact filter,
    odd lengths included), else `2 · (K - 1)`.
    """
    if filter_bins is None:
        if max_sequence_length is None:
            raise ValueError("A spectral filter needs `filter_bins` or `max_sequence_length`")
        filter_bins = min(max_sequence_length // 2 + 1, DEFAULT_MAX_FILTER_BINS)
    if max_sequence_length is not None and filter_bins == max_sequence_length // 2 + 1:
        return max_sequence_length, filter_bins
    return 2 * (filter_bins - 1), filter_bins


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
