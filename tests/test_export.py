"""`spectralmix.export` on the active Keras backend.

Tests marked `export` (the `export` nox session: all three frameworks plus onnx, onnxruntime
and ai-edge-litert) export two small models, an `FFTNetClassifier` (odd length, padding) and
an `FFTNetViTImageClassifier` (v2 blocks), in every format this backend writes, then run each
artifact in a fresh process that imports only the target runtime (`tests/export_check.py`) at
two batch sizes and compare with the Keras model. A format this backend cannot write must
raise a `ValueError` naming the alternatives, and the alternative it names (the `.keras` file
exported under TensorFlow) is run through the same check.

The unmarked tests (argument errors, atomic writes, the DFT copy) need no runtime.
"""

from __future__ import annotations

import os
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
    FFTNetClassifier,
    FFTNetViTBackbone,
    FFTNetViTImageClassifier,
)
from tests.helpers import BACKEND, assert_close, to_numpy

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


def _image_model():
    backbone = FFTNetViTBackbone(
        image_size=8,
        patch_size=2,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        token_mixer_kwargs={"variant": "v2"},
        norm_first=True,
    )
    return FFTNetViTImageClassifier(backbone=backbone, num_classes=4)


MODELS = {"sequence": _sequence_model, "image": _image_model}


def _inputs(kind: str, batch: int, rng) -> np.ndarray:
    if kind == "sequence":
        ids = rng.integers(1, 20, (batch, 15)).astype("int32")
        ids[0, 11:] = 0  # padding: the mask flows through the exported graph too
        return ids
    return rng.standard_normal((batch, 8, 8, 3)).astype("float32")


def _check_in_runtime(fmt: str, artifact: str, model, kind: str, tmp_path) -> None:
    """Runs `artifact` alone in its runtime at batch 1 and 3; outputs equal the model's."""
    rng = np.random.default_rng(7)
    inputs = {f"batch{b}": _inputs(kind, b, rng) for b in (1, 3)}
    expected = {k: to_numpy(model(x)) for k, x in inputs.items()}
    np.savez(tmp_path / "inputs.npz", **inputs)
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "PYTHONPATH")}
    result = subprocess.run(
        [sys.executable, CHECK, fmt, artifact, "inputs.npz", "outputs.npz"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    with np.load(tmp_path / "outputs.npz") as outputs:
        imported = set(outputs["imported"].tolist())
        runtime_frameworks = {"tensorflow"} if fmt == "tf_saved_model" else set()
        assert imported <= runtime_frameworks, imported
        for key, want in expected.items():
            assert outputs[key].shape == want.shape
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
    _check_in_runtime(fmt, path, model, kind, tmp_path)


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
        _check_in_runtime(fmt, path, model, "sequence", tmp_path)


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
