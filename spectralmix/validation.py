"""Argument checks shared by all of spectralmix: clear errors that name what was received.

Every check returns the value (converted where it says so) or raises an error whose message
names the argument and the value, as in "`num_heads` must be a positive integer. Received:
num_heads=0". Imports neither Keras nor any framework (nor NumPy), so the framework-free modules
(`spectralmix.flops`, the data readers, the command line) use it too.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

__all__ = [
    "boolean",
    "choice",
    "integer",
    "legacy_default",
    "non_negative_float",
    "one_line",
    "optional_integer",
    "optional_positive_int",
    "positive_float",
    "positive_int",
    "rate",
]


def positive_int(name: str, value: Any) -> int:
    """`value` as an `int` if it is a Python int >= 1 (not a bool); else a `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def optional_positive_int(name: str, value: Any) -> int | None:
    """`None`, or `positive_int(name, value)`."""
    return None if value is None else positive_int(name, value)


def integer(name: str, value: Any, minimum: int | None = None) -> int:
    """`value` as an `int` if it is an integer, Python's or NumPy's (not a bool), else a
    `TypeError`; a `ValueError` if it is below `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={value!r}")
    return int(value)


def optional_integer(name: str, value: Any, minimum: int | None = None) -> int | None:
    """`None`, or `integer(name, value, minimum)`."""
    return None if value is None else integer(name, value, minimum)


def rate(name: str, value: Any) -> float:
    """`value` as a `float` if it is a number in [0, 1) (a dropout rate); else a `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")
    return float(value)


def positive_float(name: str, value: Any) -> float:
    """`value` as a `float` if it is a number > 0; else a `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return float(value)


def non_negative_float(name: str, value: Any) -> float:
    """`value` as a `float` if it is a number >= 0; else a `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"`{name}` must be a number >= 0. Received: {name}={value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """`value` if it is a bool; else a `TypeError`."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def choice(name: str, value: Any, options: Sequence[str]) -> str:
    """`value` if it is one of `options`; else a `ValueError` listing them."""
    if value not in options:
        raise ValueError(f"`{name}` must be one of {list(options)}. Received: {name}={value!r}")
    return value


def legacy_default(config: dict, name: str, value: Any) -> dict:
    """`config` with `name` set to `value` if absent: configs saved before an argument existed
    load with the behaviour they were saved with, not with the argument's newer default."""
    return config if name in config else {**config, name: value}


def one_line(error: BaseException) -> str:
    """`error`'s message on one line (whitespace runs collapsed), or its type's name."""
    return " ".join(str(error).split()) or type(error).__name__
