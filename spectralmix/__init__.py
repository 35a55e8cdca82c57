"""spectralmix: FFT token mixers for Keras 3 (FFTNet, modReLU, FNet) on JAX, TensorFlow, PyTorch.

`spectralmix.layers` holds the Keras layers; `spectralmix.reference` the framework-free Array API
statement of the math; `spectralmix.export(model, path, format)` writes a SavedModel, ONNX or
LiteRT artifact (see `spectralmix.export`). Submodules are imported on first use, so
`import spectralmix` alone imports neither Keras nor any framework.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "backends",
    "export",
    "flops",
    "layers",
    "models",
    "ops",
    "reference",
    "registry",
    "schedules",
    "tasks",
    "validation",
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "count_flops":
        return importlib.import_module(f"{__name__}.flops").count_flops
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *_SUBMODULES, "count_flops"]
