"""`spectralmix.export` on the active Keras backend.

Tests marked `export` (the `export` nox session: all three frameworks plus onnx, onnxruntime
and ai-edge-litert) export two small models, an `FFTNetClassifier` (odd length, padding) and
an `FFTNetViTImageClassifier` (v2 blocks), in every format this backend writes, then run each
artifact in a fresh process that imports only the target runtime (`tests/export_check.py`) at
two batch sizes and compare with the Keras model. The newer token mixers are exported the same
way, each in the model it serves in (`MIXER_MODELS`: GFNet's 1-D and 2-D filters, Hyena
bidirectional in a classifier and causal in an `FFTNetCausalLM`, causal attention in an
`FFTNetCausalLM`), their artifacts run in one runtime process per format. A format this
backend cannot write must raise a `ValueError` naming the alternatives, and the alternative it
names (the `.keras` file exported under TensorFlow) is run through the same check. A layer
that declares it cannot be written to a format (`export_formats`) is refused in one line.

The unmarked tests (argument errors, atomic writes, the DFT copy) need no runtime.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import types

import keras
import numpy as np
import pytest

import spectralmix
from spectralmix import export as export_module
from spectralmix.models import (
    FFTNetBackbone,
    FFTNetCausalLM,
    FFTNetClassifier,
    FFTNetViTBackbone,
    FFTNetViTImageClassifier,
    causal_mixer_kwargs,
)
from tests.helpers import BACKEND, assert_close, registered_mixers, to_numpy

# torch's pytree deprecates `isinstance(spec, LeafSpec)`, which the ONNX exporter stack still
# does (torch 2.13, onnxscript 0.7.2); not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*isinstance\\(treespec, LeafSpec\\).*:FutureWarning"
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = os.path.join(ROOT, "tests", "export_check.py")
SUPPORTED = export_module.supported_formats(BACKEND)
UNSUPPORTED = [f for f in export_module.FORMATS if f not in SUPPORTED]
TARGET = {"tf_saved_model": "model", "onnx": "model.onnx", "litert": "model.tflite"}


def _sequence_backbone(**kwargs):
    return FFTNetBackbone(
        vocabulary_size=20,
        max_sequence_length=15,
        hidden_dim=16,
        num_layers=2,
        num_heads=2,
        class_token=True,
        **kwargs,
    )


def _sequence_model(**kwargs):
    return FFTNetClassifier(backbone=_sequence_backbone(**kwargs), num_classes=5)


def _image_model(token_mixer="fftnet", **token_mixer_kwargs):
    backbone = FFTNetViTBackbone(
        image_size=8,
        patch_size=2,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        token_mixer=token_mixer,
        token_mixer_kwargs=token_mixer_kwargs,
        norm_first=True,
    )
    return FFTNetViTImageClassifier(backbone=backbone, num_classes=4)


def _causal_lm(token_mixer, **token_mixer_kwargs):
    backbone = FFTNetBackbone(
        vocabulary_size=20,
        max_sequence_length=12,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        token_mixer=token_mixer,
        token_mixer_kwargs=causal_mixer_kwargs(token_mixer, token_mixer_kwargs),
        norm_first=True,
    )
    return FFTNetCausalLM(backbone=backbone)


MODELS = {"sequence": _sequence_model, "image": lambda: _image_model(variant="v2")}

#: Hyena with a small filter network (the default's 64 wide is not what is tested here).
HYENA = {"filter_order": 8}

#: The newer token mixers, each in a model it serves in: name -> (model factory, input kind).
MIXER_MODELS = {
    "gfnet": (lambda: _sequence_model(token_mixer="gfnet"), "sequence"),
    "hyena_bidirectional": (
        lambda: _sequence_model(token_mixer="hyena", token_mixer_kwargs={**HYENA, "causal": False}),
        "sequence",
    ),
    "gfnet_2d": (lambda: _image_model("gfnet_2d"), "image"),
    "hyena_lm": (lambda: _causal_lm("hyena", **HYENA), "tokens"),
    "attention_lm": (lambda: _causal_lm("attention"), "tokens"),
}


def _inputs(kind: str, batch: int, rng) -> np.ndarray:
    if kind in ("sequence", "tokens"):
        length = 15 if kind == "sequence" else 12
        ids = rng.integers(1, 20, (batch, length)).astype("int32")
        ids[0, length - 4 :] = 0  # padding: the mask flows through the exported graph too
        return ids
    return rng.standard_normal((batch, 8, 8, 3)).astype("float32")


def _check_in_runtime(fmt: str, artifacts, tmp_path) -> None:
    """Runs each artifact of `artifacts` (`{name: (path, model, input kind)}`) alone in its
    runtime, one process for all, at batch 1 and 3; outputs equal the model's. Prints the
    largest difference of each (`pytest -s` shows them)."""
    rng = np.random.default_rng(7)
    expected, argv = {}, []
    for name, (artifact, model, kind) in artifacts.items():
        inputs = {f"batch{b}": _inputs(kind, b, rng) for b in (1, 3)}
        expected[name] = {k: to_numpy(model(x)) for k, x in inputs.items()}
        np.savez(tmp_path / f"{name}_inputs.npz", **inputs)
        argv += [artifact, f"{name}_inputs.npz", f"{name}_outputs.npz"]
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "PYTHONPATH")}
    result = subprocess.run(
        [sys.executable, CHECK, fmt, *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    runtime_frameworks = {"tensorflow"} if fmt == "tf_saved_model" else set()
    for name, wanted in expected.items():
        with np.load(tmp_path / f"{name}_outputs.npz") as outputs:
            imported = set(outputs["imported"].tolist())
            assert imported <= runtime_frameworks, (name, imported)
            for key, want in wanted.items():
                assert outputs[key].shape == want.shape, (name, key)
                difference = float(np.abs(outputs[key] - want).max())
                print(f"{BACKEND} -> {fmt}, {name} {key}: max |difference| {difference:.1e}")
                assert_close(outputs[key], want, "export_float32")


def _stale(path: str, fmt: str) -> None:
    """Something already at the target: the export must replace it whole."""
    if fmt == "tf_saved_model":
        os.makedirs(path)
        with open(os.path.join(path, "stale"), "w") as f:
            f.write("old")
    else:
        with open(path, "wb") as f:
            f.write(b"old")


@pytest.mark.export
@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("fmt", SUPPORTED)
def test_export_runs_in_the_runtime_alone(tmp_path, fmt, kind):
    model = MODELS[kind]()
    path = str(tmp_path / TARGET[fmt])
    _stale(path, fmt)
    before = model.get_config()
    assert spectralmix.export(model, path, fmt) == path
    assert model.get_config() == before  # the user's model is not switched to the DFT
    assert sorted(os.listdir(tmp_path)) == [TARGET[fmt]]  # no temporary left behind
    if fmt == "tf_saved_model":
        assert not os.path.exists(os.path.join(path, "stale"))
    _check_in_runtime(fmt, {kind: (path, model, kind)}, tmp_path)


@pytest.mark.export
@pytest.mark.parametrize("fmt", SUPPORTED)
def test_new_token_mixers_export(tmp_path, fmt):
    artifacts = {}
    for name, (factory, kind) in MIXER_MODELS.items():
        model = factory()
        path = str(tmp_path / f"{name}_{TARGET[fmt]}")
        assert spectralmix.export(model, path, fmt) == path
        artifacts[name] = (path, model, kind)
    _check_in_runtime(fmt, artifacts, tmp_path)


if UNSUPPORTED:

    @pytest.mark.export
    @pytest.mark.parametrize("fmt", UNSUPPORTED)
    def test_unsupported_format_names_a_working_alternative(tmp_path, fmt):
        model = _sequence_model()
        path = str(tmp_path / TARGET[fmt])
        with pytest.raises(ValueError, match=r"Alternatives: .*python -m spectralmix\.export"):
            spectralmix.export(model, path, fmt)
        assert os.listdir(tmp_path) == []
        model.save(tmp_path / "model.keras")
        result = subprocess.run(
            [sys.executable, "-m", "spectralmix.export", "model.keras", path, "--format", fmt],
            cwd=tmp_path,
            env={**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": ROOT},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        _check_in_runtime(fmt, {"sequence": (path, model, "sequence")}, tmp_path)


# -- no runtime needed ---------------------------------------------------------------------------


def test_bad_arguments(tmp_path):
    model = _sequence_model()
    fmt = SUPPORTED[0]
    with pytest.raises(ValueError, match="format='savedmodel'"):
        spectralmix.export(model, str(tmp_path / "m"), "savedmodel")
    with pytest.raises(TypeError, match="model="):
        spectralmix.export("model.keras", str(tmp_path / TARGET[fmt]), fmt)
    with pytest.raises(TypeError, match="path=3"):
        spectralmix.export(model, 3, fmt)
    with pytest.raises(ValueError, match="directory does not exist.*path="):
        spectralmix.export(model, str(tmp_path / "missing" / TARGET[fmt]), fmt)
    for shape in [(15, 2), (0,), "15", (None,)]:
        with pytest.raises(ValueError, match="input_shape="):
            spectralmix.export(model, str(tmp_path / TARGET[fmt]), fmt, input_shape=shape)
    image = _image_model()
    with pytest.raises(ValueError, match=r"input_shape=\(8, 8, 1\)"):
        spectralmix.export(image, str(tmp_path / TARGET[fmt]), fmt, input_shape=(8, 8, 1))
    if "onnx" in SUPPORTED:
        with pytest.raises(ValueError, match=r"end with '\.onnx'.*path="):
            spectralmix.export(model, str(tmp_path / "model.tflite"), "onnx")
    else:
        with pytest.raises(ValueError, match="format='onnx'.*Alternatives"):
            spectralmix.export(model, str(tmp_path / "model.onnx"), "onnx")
    # A file where a SavedModel directory goes, or a directory where a file goes.
    clash = tmp_path / TARGET[fmt]
    if fmt == "tf_saved_model":
        clash.touch()
    else:
        clash.mkdir()
    with pytest.raises(ValueError, match="exists there.*path="):
        spectralmix.export(model, str(clash), fmt)
    assert sorted(os.listdir(tmp_path)) == [TARGET[fmt]]


def test_a_failed_export_leaves_nothing_and_keeps_the_old_artifact(tmp_path, monkeypatch):
    fmt = SUPPORTED[0]
    path = str(tmp_path / TARGET[fmt])
    _stale(path, fmt)

    def half_write(model, tmp, *args):
        if fmt == "tf_saved_model":
            os.makedirs(os.path.join(tmp, "variables"))
        else:
            with open(tmp, "wb") as f:
                f.write(b"\x08partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_module, "_write", half_write)
    # The exporters need not be installed here: nothing of theirs runs.
    monkeypatch.setattr(export_module, "_require_dependencies", lambda backend, fmt: None)
    with pytest.raises(RuntimeError, match="disk full"):
        spectralmix.export(_sequence_model(), path, fmt)
    assert sorted(os.listdir(tmp_path)) == [TARGET[fmt]]
    if fmt == "tf_saved_model":
        assert os.listdir(path) == ["stale"]
    else:
        with open(path, "rb") as f:
            assert f.read() == b"old"


def _only_missing(monkeypatch, missing: str, modules) -> None:
    """`import missing` fails as if it were not installed; the route's other modules import
    (as empty stand-ins), whatever this environment holds."""
    for module in modules:
        value = None if module == missing else types.ModuleType(module)
        monkeypatch.setitem(sys.modules, module, value)


DEPENDENT_ROUTES = [
    (backend, fmt, module)
    for (backend, fmt), route in export_module._ROUTES.items()
    for module in export_module._DEPENDENCIES[route]
]


@pytest.mark.parametrize(("backend", "fmt", "module"), DEPENDENT_ROUTES)
def test_a_missing_exporter_module_is_named_with_the_extra(backend, fmt, module, monkeypatch):
    modules = export_module._DEPENDENCIES[export_module._ROUTES[(backend, fmt)]]
    _only_missing(monkeypatch, module, modules)
    with pytest.raises(ImportError) as error:
        export_module._require_dependencies(backend, fmt)
    assert type(error.value) is ImportError  # not a bare ModuleNotFoundError from deep inside
    assert error.value.name == module
    message = str(error.value)
    assert f"needs the {module!r} module" in message
    assert 'pip install -e ".[export]"' in message
    assert f"format={fmt!r} with KERAS_BACKEND={backend!r}" in message


def test_every_route_has_its_dependencies_listed():
    assert set(export_module._ROUTES.values()) == set(export_module._DEPENDENCIES)
    assert {m for r in DEPENDENT_ROUTES for m in r[2:]} == {"onnx", "onnxscript", "tf2onnx"}


NEEDS_EXPORTERS = sorted({fmt for backend, fmt, _ in DEPENDENT_ROUTES if backend == BACKEND})
if NEEDS_EXPORTERS:

    @pytest.mark.parametrize("fmt", NEEDS_EXPORTERS)
    def test_export_without_the_exporters_fails_before_writing(tmp_path, monkeypatch, fmt):
        modules = export_module._DEPENDENCIES[export_module._ROUTES[(BACKEND, fmt)]]
        _only_missing(monkeypatch, "onnx", modules)
        path = str(tmp_path / TARGET[fmt])
        with pytest.raises(ImportError, match=r"'onnx' module.*\.\[export\]") as error:
            spectralmix.export(_sequence_model(), path, fmt)
        assert error.value.name == "onnx"
        assert os.listdir(tmp_path) == []


class _FFTOnlyMixer(keras.layers.Layer):
    """A toy token mixer with an FFT and no DFT path: `irfft(rfft(x))` along the tokens."""

    export_formats = ("tf_saved_model",)

    def call(self, inputs, mask=None, training=None):
        x = keras.ops.transpose(inputs, (0, 2, 1))
        y = keras.ops.irfft(keras.ops.rfft(x), fft_length=x.shape[-1])
        return keras.ops.transpose(y, (0, 2, 1))

    def get_config(self):
        return {"name": self.name, "dtype": keras.dtype_policies.serialize(self.dtype_policy)}


def test_a_mixer_without_a_dft_path_is_refused_in_one_line(tmp_path):
    with registered_mixers({"fft_only": _FFTOnlyMixer}):
        model = _sequence_model(token_mixer="fft_only")
        for fmt in ("onnx", "litert"):
            start = f"`format={fmt!r}` cannot hold token mixer 'fft_only' "
            # Through `export` where this backend writes the format, else the check itself.
            if fmt in SUPPORTED:
                refuse = functools.partial(spectralmix.export, model, str(tmp_path / TARGET[fmt]))
            else:
                refuse = functools.partial(export_module._check_export_formats, model)
            with pytest.raises(ValueError, match=f"^{re.escape(start)}") as error:
                refuse(fmt)
            message = str(error.value)
            assert "\n" not in message
            assert "has no fft_impl='dft' form" in message
            assert "it exports to ['tf_saved_model'] (its export_formats)" in message
            assert os.listdir(tmp_path) == []
        export_module._check_export_formats(model, "tf_saved_model")  # passes
        _FFTOnlyMixer.export_formats = "tf_saved_model"
        try:
            with pytest.raises(ValueError, match="export_formats='tf_saved_model'"):
                export_module._check_export_formats(model, "tf_saved_model")
        finally:
            _FFTOnlyMixer.export_formats = ("tf_saved_model",)


def _fft_impls(model):
    return {layer.fft_impl for layer in export_module._spectral_layers(model)}


def test_dft_copy_has_the_same_function_and_leaves_the_model_alone():
    model = _sequence_model()
    ids = _inputs("sequence", 3, np.random.default_rng(0))
    copy = export_module.with_fft_impl(model, "dft")
    assert _fft_impls(model) == {"fft"}
    assert _fft_impls(copy) == {"dft"}
    assert_close(copy(ids), to_numpy(model(ids)), "float32_op")
    assert export_module.with_fft_impl(copy, "dft") is copy


def test_dft_copy_of_a_plain_functional_model():
    from spectralmix.layers import FFTNetBlock, FourierMixing

    inputs = keras.Input((9, 8))
    x = FFTNetBlock(2, max_sequence_length=9)(inputs)
    x = FourierMixing()(keras.layers.Dense(8)(x))
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    copy = export_module.with_fft_impl(model, "dft")
    assert _fft_impls(model) == {"fft"}
    assert _fft_impls(copy) == {"dft"}
    x = np.random.default_rng(0).standard_normal((2, 9, 8)).astype("float32")
    assert_close(copy(x), to_numpy(model(x)), "float32_op", scale=True)
    with pytest.raises(ValueError, match="fft_impl='dtf'"):
        export_module.with_fft_impl(model, "dtf")


def _mixer_kwargs(model):
    """Each block's `token_mixer_kwargs`, as its config holds them."""
    return [
        layer.get_config()["token_mixer_kwargs"]
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if "token_mixer_kwargs" in layer.get_config() and layer is not model
        and not hasattr(layer, "config_keys")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("mixer", "kwargs"),
    [
        ("fftnet", None),
        ("fftnet", {"variant": "v2", "modrelu_epsilon": 0.0}),
        ("fftnet", {"fft_impl": "fft"}),
        ("fnet", None),
        ("gfnet", None),
        ("hyena", {**HYENA, "causal": False}),
    ],
)
def test_dft_copy_rewrites_fft_impl_in_token_mixer_kwargs(mixer, kwargs):
    model = _sequence_model(token_mixer=mixer, token_mixer_kwargs=kwargs)
    before = model.get_config()
    copy = export_module.with_fft_impl(model, "dft")
    expected = {**(kwargs or {}), "fft_impl": "dft"}
    # In the backbone's config (what a saved copy rebuilds from) and in each block's.
    assert copy.backbone.token_mixer_kwargs == expected
    blocks = _mixer_kwargs(model)  # the mixer's arguments, the backbone's shared ones added
    assert len(blocks) == 2
    assert all(block.items() >= (kwargs or {}).items() for block in blocks)
    assert _mixer_kwargs(copy) == [{**block, "fft_impl": "dft"} for block in blocks]
    assert _fft_impls(copy) == {"dft"}
    assert model.get_config() == before
    assert model.backbone.token_mixer_kwargs == (kwargs or {})
    assert _fft_impls(model) == {"fft"}
    ids = _inputs("sequence", 3, np.random.default_rng(1))
    assert_close(copy(ids), to_numpy(model(ids)), "float32_op", scale=True)
    # The copy saves and loads as what it is.
    config = copy.get_config()
    assert type(copy).from_config(config).backbone.token_mixer_kwargs == expected


def test_dft_copy_of_a_backbone_and_of_a_model_without_ffts():
    backbone = _sequence_backbone(token_mixer_kwargs={"variant": "v2"})
    copy = export_module.with_fft_impl(backbone, "dft")
    assert copy.token_mixer_kwargs == {"variant": "v2", "fft_impl": "dft"}
    assert _fft_impls(copy) == {"dft"}
    attention = _sequence_model(token_mixer="attention")
    assert export_module.with_fft_impl(attention, "dft") is attention  # nothing to switch
    assert attention.backbone.token_mixer_kwargs == {}


def test_command_line_errors_are_one_line(tmp_path, capsys):
    model = _sequence_model()
    model.save(tmp_path / "model.keras")
    target = str(tmp_path / "missing" / TARGET[SUPPORTED[0]])
    with pytest.raises(SystemExit) as exit_info:
        spectralmix.export.main([str(tmp_path / "model.keras"), target, "--format", SUPPORTED[0]])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "error: `path`'s directory does not exist" in lines[-1]
    assert not any("Traceback" in line for line in lines)
