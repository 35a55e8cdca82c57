"""Argument and input checks shared by the layers: clear errors that name what was received."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from spectralmix.backends import FFT_IMPLS as FFT_IMPLS

#: FFTNet forms: "v1" is the paper; "v2" the authors' later code (see docs/layers.md).
VARIANTS = ("v1", "v2")


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def optional_positive_int(name: str, value: Any) -> int | None:
    return None if value is None else positive_int(name, value)


def rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")
    return float(value)


def positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return float(value)


def non_negative_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"`{name}` must be a number >= 0. Received: {name}={value!r}")
    return float(value)


#: modReLU's denominator floor, `ReLU(|z| + b) · z / max(|z|, epsilon)`: the authors' v1 code
#: clamps `|z|` at 1e-3 (docs/layers.md, "Fidelity"). `0` is the exact form.
MODRELU_EPSILON = 1e-3


def legacy_default(config: dict, name: str, value: Any) -> dict:
    """`config` with `name` set to `value` if absent: configs saved before an argument existed
    load with the behaviour they were saved with, not with the argument's newer default."""
    return config if name in config else {**config, name: value}


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def choice(name: str, value: Any, options: Sequence[str]) -> str:
    if value not in options:
        raise ValueError(f"`{name}` must be one of {list(options)}. Received: {name}={value!r}")
    return value


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
