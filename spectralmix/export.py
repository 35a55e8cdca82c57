"""Export a Keras model with FFT token mixers for serving: TF SavedModel, ONNX or LiteRT.

`spectralmix.export(model, path, format)` (this module is callable) picks the route that works
for the active Keras backend and the format, with a dynamic batch dimension:

| backend | `tf_saved_model` | `onnx` | `litert` |
| --- | --- | --- | --- |
| tensorflow | serving `tf.function` (FFT ops) | DFT model → tf2onnx | DFT model → LiteRT |
| jax | `model.export` via jax2tf (FFT in StableHLO) | — | — |
| torch | — | DFT model → `torch.onnx.export(dynamo=True)` | — |

"DFT model": ONNX and LiteRT runtimes lack a usable FFT (tf2onnx cannot convert IRFFT, LiteRT's
builtin ops have no IRFFT and no complex numbers), so the model is rebuilt from its config with
`fft_impl="dft"` (the same function as real matmuls, `spectralmix.backends.dft`) and the
weights are copied; the user's model is never changed. The cells marked — raise a
`ValueError` naming the alternatives: every format is reachable from a `.keras` file with
`KERAS_BACKEND=tensorflow python -m spectralmix.export model.keras PATH --format FORMAT`
(`.keras` files load on every backend).

A layer that cannot take part in a format declares the formats it exports to in a class
attribute, `export_formats` (a token mixer that computes an FFT and has no `fft_impl="dft"`
path: `export_formats = ("tf_saved_model",)`); exporting a model that holds one to another
format raises a one-line `ValueError` naming the layer, the format, why and the formats it
exports to, before anything is written. Every built-in token mixer exports to every format.

The artifact is written to a temporary path in the target's directory and renamed into place
only once complete (and, for ONNX, once `onnx.checker` accepts it), so a failed export leaves
no partial file and an existing artifact at `path` stays whole.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import shutil
import sys
import types
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["FORMATS", "export", "supported_formats", "with_fft_impl"]

#: The export formats.
FORMATS = ("tf_saved_model", "onnx", "litert")
_SUFFIX = {"onnx": ".onnx", "litert": ".tflite"}

#: How each (backend, format) pair is exported.
_ROUTES = {
    ("tensorflow", "tf_saved_model"): "keras",
    ("jax", "tf_saved_model"): "keras",
    ("tensorflow", "onnx"): "tf2onnx",
    ("torch", "onnx"): "torch_dynamo",
    ("tensorflow", "litert"): "keras",
}

#: Why a pair has no route.
_WHY_NOT = {
    ("torch", "tf_saved_model"): (
        "Keras converts torch models to SavedModel through torch_xla (StableHLO), which "
        "spectralmix does not support"
    ),
    ("torch", "litert"): (
        "Keras converts torch models to LiteRT through litert-torch, a separate converter "
        "stack that spectralmix does not support"
    ),
    ("jax", "onnx"): (
        "Keras converts JAX models to ONNX through jax2onnx (which pulls in flax and orbax), "
        "which spectralmix does not support"
    ),
    ("jax", "litert"): "Keras has no JAX → LiteRT converter",
}

#: Formats that need the FFT-free (DFT) model.
_NEEDS_DFT = ("onnx", "litert")

#: Modules each route needs besides the framework (the `export` extra installs them).
_DEPENDENCIES = {
    "keras": (),
    "tf2onnx": ("tf2onnx", "onnx"),
    "torch_dynamo": ("onnxscript", "onnx"),
}
_EXTRA = 'pip install -e ".[export]"'


def _require_dependencies(backend: str, format: str) -> None:
    """Imports the modules the `(backend, format)` route needs; a missing one raises an
    `ImportError` naming it and the `export` extra, before any work is done."""
    for module in _DEPENDENCIES[_ROUTES[(backend, format)]]:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(
                f"`format={format!r}` from the {backend!r} backend needs the {module!r} "
                f"module, which cannot be imported ({error}). Install the exporters with "
                f"the `export` extra: `{_EXTRA}` in a clone of spectralmix. "
                f"Received: format={format!r} with KERAS_BACKEND={backend!r}",
                name=module,
            ) from error


def supported_formats(backend: str) -> list[str]:
    """The formats `export` writes directly from Keras backend `backend`."""
    return [f for f in FORMATS if (backend, f) in _ROUTES]


def _unsupported(backend: str, format: str) -> ValueError:
    native = supported_formats(backend)
    via = "tensorflow" if format != "onnx" else "tensorflow or torch"
    return ValueError(
        f"`format={format!r}` cannot be exported from the {backend!r} backend: "
        f"{_WHY_NOT[(backend, format)]}. Alternatives: export to {native} from {backend!r}; or "
        f"save the model (`model.save('model.keras')`) and export it under the {via} backend, "
        f"e.g. `KERAS_BACKEND=tensorflow python -m spectralmix.export model.keras PATH "
        f"--format {format}`. Received: format={format!r} with KERAS_BACKEND={backend!r}"
    )


# ---------------------------------------------------------------------------------------------
# Arguments


def _check_model(model: Any):
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: model={model!r} of type {type(model)}"
        )
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            "`model` has no defined inputs: export needs a functional model (built on "
            "keras.Input), such as the spectralmix models. "
            f"Received: model={model.name!r} of type {type(model).__name__}"
        )
    if len(inputs) != 1:
        raise ValueError(
            f"`model` must have exactly one input. Received: model with {len(inputs)} inputs"
        )
    return inputs[0]


def _default_dims(model) -> dict[str, int]:
    """Sizes a spectralmix model was built for, from its (task model's: its backbone's)
    config."""
    config = getattr(model, "backbone", model).get_config()
    return {k: config[k] for k in ("image_size", "max_sequence_length") if k in config}


def _input_spec(model, input_shape):
    """`keras.InputSpec` with a dynamic batch and every other dimension fixed."""
    import keras

    tensor = _check_model(model)
    known = tuple(tensor.shape[1:])
    if input_shape is None:
        defaults = _default_dims(model)
        if len(known) == 1 and "max_sequence_length" in defaults:
            input_shape = tuple(defaults["max_sequence_length"] if d is None else d for d in known)
        elif len(known) == 3 and "image_size" in defaults:
            size = defaults["image_size"]
            input_shape = (
                size if known[0] is None else known[0],
                size if known[1] is None else known[1],
                known[2],
            )
        else:
            input_shape = known
        if any(d is None for d in input_shape):
            raise ValueError(
                "`input_shape` is needed: the model's input has unknown dimensions besides the "
                f"batch. Pass them, e.g. input_shape={tuple(d or 64 for d in known)}. "
                f"Received: input_shape=None for a model input of shape {tuple(tensor.shape)}"
            )
    else:
        if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
            raise ValueError(
                "`input_shape` must be a tuple of positive ints (the input's shape without the "
                f"batch). Received: input_shape={input_shape!r}"
            )
        input_shape = tuple(input_shape)
        valid = all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
            for d in input_shape
        )
        if not valid or len(input_shape) != len(known):
            raise ValueError(
                f"`input_shape` must be {len(known)} positive ints (the input's shape without "
                f"the batch, {known}). Received: input_shape={input_shape!r}"
            )
        clash = [(a, b) for a, b in zip(input_shape, known, strict=True) if b not in (None, a)]
        if clash:
            raise ValueError(
                f"`input_shape` must match the model's fixed dimensions {known}. "
                f"Received: input_shape={input_shape!r}"
            )
        input_shape = tuple(int(d) for d in input_shape)
    name = getattr(tensor, "name", None) or "inputs"
    return keras.InputSpec(shape=(None, *input_shape), dtype=tensor.dtype, name=name)


def _check_path(path: Any, format: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a string or os.PathLike. Received: path={path!r}")
    path = os.path.abspath(os.fspath(path))
    suffix = _SUFFIX.get(format)
    if suffix and not path.endswith(suffix):
        raise ValueError(
            f"`path` for format={format!r} must end with {suffix!r}. Received: path={path!r}"
        )
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise ValueError(f"`path`'s directory does not exist. Received: path={path!r}")
    if format == "tf_saved_model" and os.path.isfile(path):
        raise ValueError(
            "`path` for a SavedModel is a directory, but a file exists there. "
            f"Received: path={path!r}"
        )
    if suffix and os.path.isdir(path):
        raise ValueError(
            f"`path` for format={format!r} is a file, but a directory exists there. "
            f"Received: path={path!r}"
        )
    return path


def _check_export_formats(model, format: str) -> None:
    """The first layer of `model` whose class declares `export_formats` without `format`
    raises a one-line `ValueError`."""
    for layer in model._flatten_layers(include_self=True, recursive=True):
        formats = getattr(type(layer), "export_formats", FORMATS)
        if isinstance(formats, str) or not set(formats) <= set(FORMATS):
            raise ValueError(
                f"`{type(layer).__qualname__}.export_formats` must be a tuple of formats from "
                f"{list(FORMATS)}. Received: export_formats={formats!r}"
            )
        if format not in formats:
            name = getattr(type(layer), "token_mixer_name", None)
            what = f"token mixer {name!r}" if name else "layer"
            raise ValueError(
                f"`format={format!r}` cannot hold {what} {type(layer).__qualname__} "
                f"({layer.name!r}): it computes an FFT and has no fft_impl='dft' form, and "
                f"spectralmix writes {format} without FFT ops (tf2onnx and LiteRT convert no "
                f"real FFT); it exports to {list(formats)} (its export_formats). "
                f"Received: format={format!r}"
            )


# ---------------------------------------------------------------------------------------------
# The FFT-free model


def _spectral_layers(model):
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if "fft_impl" in layer.get_config()
    ]


def _config_with_fft_impl(config: Any, fft_impl: str) -> Any:
    """`config` (nested dicts and lists) with every `fft_impl` set to `fft_impl`, including in
    the `token_mixer_kwargs` of blocks and backbones whose mixer takes it."""
    from spectralmix.registry import get_token_mixer, takes_argument

    if isinstance(config, list):
        return [_config_with_fft_impl(item, fft_impl) for item in config]
    if not isinstance(config, dict):
        return config
    config = {key: _config_with_fft_impl(value, fft_impl) for key, value in config.items()}
    if "fft_impl" in config:
        config["fft_impl"] = fft_impl
    mixer = config.get("token_mixer")
    takes = isinstance(mixer, str) and takes_argument(get_token_mixer(mixer), "fft_impl")
    if takes and "token_mixer_kwargs" in config:
        config["token_mixer_kwargs"] = {
            **(config["token_mixer_kwargs"] or {}),
            "fft_impl": fft_impl,
        }
    return config


def with_fft_impl(model, fft_impl: str = "dft"):
    """A copy of `model` (same weights) whose spectral layers use `fft_impl`; `model` itself is
    not changed. spectralmix models are rebuilt from their config; other functional or
    Sequential models are cloned layer by layer. Returns `model` itself when every spectral
    layer already uses `fft_impl`."""
    import keras

    from spectralmix.layers import _checks
    from spectralmix.models import Backbone, Task

    fft_impl = _checks.choice("fft_impl", fft_impl, _checks.FFT_IMPLS)
    if all(layer.fft_impl == fft_impl for layer in _spectral_layers(model)):
        return model
    if isinstance(model, (Backbone, Task)):
        clone = type(model).from_config(_config_with_fft_impl(model.get_config(), fft_impl))
    else:

        def clone_layer(layer):
            return type(layer).from_config(_config_with_fft_impl(layer.get_config(), fft_impl))

        try:
            clone = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
        except ValueError as error:
            raise ValueError(
                f"Cannot rebuild `model` with fft_impl={fft_impl!r}: it is neither a "
                "spectralmix model nor a functional/Sequential model (subclassed models cannot "
                f"be cloned). Build it with fft_impl={fft_impl!r} instead. "
                f"Received: model of type {type(model).__name__}"
            ) from error
    clone.set_weights(model.get_weights())
    return clone


# ---------------------------------------------------------------------------------------------
# Routes


@functools.cache
def _register_tf2onnx_erfc() -> None:
    """tf2onnx has no handler for TF's `Erfc` (exact GELU) and silently leaves the op in the
    graph, which ONNX does not define; map it to `1 - Erf(x)` (ONNX `Erf`, opset 9)."""
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = ctx.get_dtype(node.input[0])
            one = ctx.make_const(
                utils.make_name("erfc_one"), np.array(1, utils.map_onnx_to_numpy_type(dtype))
            )
            node.type = "Erf"
            sub = ctx.insert_new_node_on_output(
                "Sub",
                node.output[0],
                name=utils.make_name(node.name + "_erfc"),
                inputs=[one.output[0], node.output[0]],
            )
            ctx.set_dtype(sub.output[0], dtype)
            ctx.copy_shape(node.output[0], sub.output[0])


def _export_torch_onnx(model, tmp: str, spec) -> None:
    import torch

    sample_dtype = np.dtype(spec.dtype)
    # Batch 2, not 1: torch.export specialises a dimension whose sample size is 1.
    sample = torch.as_tensor(np.ones((2, *spec.shape[1:]), sample_dtype))
    batch = torch.export.Dim("batch", min=1)
    was_training = model.training
    model.eval()  # torch's mode flag; Keras layers run in inference mode either way
    try:
        program = torch.onnx.export(
            model,
            (sample,),
            dynamo=True,
            dynamic_shapes=(({0: batch},),),
            input_names=[spec.name],
            output_names=["output_0"],
            verbose=False,
        )
    finally:
        model.train(was_training)
    program.save(tmp)


def _tf_serving_function(model, spec):
    """`model(inputs, training=False)` as a `tf.function` of the export signature."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec(spec.shape, spec.dtype, name=spec.name)])
    def serve(inputs):
        return model(inputs, training=False)

    return serve


def _tf_onnx(model, tmp: str, spec) -> None:
    """ONNX through tf2onnx from the serving function (as `model.export(format="onnx")`, which
    also traces the model at its own input shape)."""
    import tensorflow as tf
    import tf2onnx
    from keras.src.export.tf2onnx_lib import patch_tf2onnx

    patch_tf2onnx()  # Keras's numpy >= 2 compatibility patches for tf2onnx
    _register_tf2onnx_erfc()
    signature = [tf.TensorSpec(spec.shape, spec.dtype, name=spec.name)]
    tf2onnx.convert.from_function(
        _tf_serving_function(model, spec), signature, opset=17, output_path=tmp
    )


def _tf_saved_model(model, directory: str, spec) -> None:
    """SavedModel with one `serving_default` signature (also `serve`), TensorFlow backend.

    Like `model.export(format="tf_saved_model")`, but it tracks the model's variables rather
    than the model: saving a tracked Keras model also traces its default signature at the
    model's own input shape, which fails for models that need a known image size (FFTNetViT's
    `(None, None, None, C)` input)."""
    import tensorflow as tf

    module = tf.Module()
    module.model_variables = [v.value for v in model.variables]
    module.serve = _tf_serving_function(model, spec)
    tf.saved_model.save(module, directory, signatures={"serving_default": module.serve})


def _tf_litert(model, tmp: str, spec) -> None:
    """LiteRT flatbuffer from the SavedModel above, builtin ops only: a model that needs an
    op LiteRT lacks fails here instead of needing the Flex (TensorFlow) delegate at run time."""
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory(dir=os.path.dirname(tmp)) as saved:
        _tf_saved_model(model, saved, spec)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        flatbuffer = converter.convert()
    with open(tmp, "wb") as f:
        f.write(flatbuffer)


def _write(model, tmp: str, format: str, spec, backend: str) -> None:
    route = _ROUTES[(backend, format)]
    if route == "keras" and backend == "tensorflow":
        (_tf_saved_model if format == "tf_saved_model" else _tf_litert)(model, tmp, spec)
    elif route == "keras":
        model.export(tmp, format=format, input_signature=[spec], verbose=False)
    elif route == "tf2onnx":
        _tf_onnx(model, tmp, spec)
    else:
        _export_torch_onnx(model, tmp, spec)
    if format == "onnx":
        import onnx

        onnx.checker.check_model(tmp, full_check=True)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _move_into_place(tmp: str, path: str) -> None:
    if not os.path.isdir(tmp) or not os.path.exists(path):
        os.replace(tmp, path)  # atomic for a file, and for a directory onto a free name
        return
    # A directory cannot replace a non-empty directory atomically: move the old one aside
    # first, and put it back if the new one cannot take its place.
    old = f"{tmp}.old"
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    _remove(old)


def export(model, path, format="tf_saved_model", *, input_shape=None):
    """Export `model` for serving with a dynamic batch dimension.

    Args:
        model: a built functional `keras.Model` with one input (e.g. `FFTNetClassifier`,
            `FFTNetViTImageClassifier`), float32.
        path: target. A directory for `"tf_saved_model"`, a `.onnx` file for `"onnx"`, a
            `.tflite` file for `"litert"`. Its parent directory must exist; an existing
            artifact is replaced only when the new one is complete.
        format: `"tf_saved_model"`, `"onnx"` or `"litert"`. See the module docstring (or
            docs/export.md) for which backend writes which format and how.
        input_shape: the input's shape without the batch, e.g. `(128,)` for token ids or
            `(32, 32, 3)` for images. Defaults to the model's input shape, with unknown
            dimensions taken from the model's `max_sequence_length` or `image_size`.

    Returns:
        The absolute path written.

    Raises:
        ValueError: a bad argument, a format the active backend cannot write (the message
            names the alternatives), or a layer of the model that declares it cannot be
            exported to `format` (`export_formats`; the message names it).
        TypeError: `model` is not a `keras.Model`, or `path` is not a path.
        ImportError: an exporter module the route needs (tf2onnx, onnx, onnxscript) is not
            installed; the message names it and the `export` extra.
    """
    import keras

    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {list(FORMATS)}. Received: format={format!r}")
    backend = keras.config.backend()
    if (backend, format) not in _ROUTES:
        if (backend, format) in _WHY_NOT:
            raise _unsupported(backend, format)
        raise ValueError(
            f"`export` supports the jax, tensorflow and torch backends. "
            f"Received: format={format!r} with KERAS_BACKEND={backend!r}"
        )
    path = _check_path(path, format)
    spec = _input_spec(model, input_shape)
    _check_export_formats(model, format)
    _require_dependencies(backend, format)
    target = with_fft_impl(model, "dft") if format in _NEEDS_DFT else model

    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:8]}.tmp{_SUFFIX.get(format, '')}")
    try:
        _write(target, tmp, format, spec, backend)
        _move_into_place(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    return path


# ---------------------------------------------------------------------------------------------
# Command line and the callable module


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m spectralmix.export MODEL.keras PATH --format F [--input-shape D ...]`: load a
    `.keras` file under the active backend (`KERAS_BACKEND`) and export it."""
    parser = argparse.ArgumentParser(
        prog="python -m spectralmix.export",
        description="Export a .keras model (under KERAS_BACKEND) to SavedModel, ONNX or LiteRT.",
    )
    parser.add_argument("model", help="a .keras file")
    parser.add_argument("path", help="target (directory, .onnx or .tflite)")
    parser.add_argument("--format", choices=FORMATS, default="tf_saved_model")
    parser.add_argument("--input-shape", type=int, nargs="+", default=None)
    args = parser.parse_args(argv)

    import keras

    import spectralmix.layers
    import spectralmix.models  # noqa: F401  (registers the classes a .keras file names)
    from spectralmix.validation import one_line

    shape = tuple(args.input_shape) if args.input_shape else None
    try:
        model = keras.saving.load_model(args.model)
        print(export(model, args.path, args.format, input_shape=shape))
    except (ValueError, TypeError) as error:  # a bad model, format or path: one line, status 2
        parser.error(one_line(error))
    except (OSError, ImportError) as error:  # the environment: one line, status 1
        parser.exit(1, f"{parser.prog}: error: {one_line(error)}\n")


class _CallableModule(types.ModuleType):
    """Lets `spectralmix.export(model, path, format)` call `export` on the module itself."""

    def __call__(self, model, path, format="tf_saved_model", **kwargs):
        return export(model, path, format, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    main()
