"""spectralmix.distribute: training on several devices equals training on one.

The `distributed` tests each start a fresh process (device counts are fixed when a framework
starts; `tests/distribute_worker.py`) that trains a tiny model with SGD from the same weights
on the same data and global batch, on one device and on several: JAX DataParallel and
ModelParallel on 4 simulated CPU devices, TensorFlow MirroredStrategy on 2 logical CPUs, torch
DistributedDataParallel over 2 gloo processes. `nox -s distributed` runs them with all three
frameworks installed. The other tests (arguments, layout map, docstrings) run on any backend.
"""

import importlib.util
import os
import subprocess
import sys
from types import MappingProxyType

import keras
import numpy as np
import pytest

from spectralmix import distribute
from spectralmix.models import (
    FFTNetBackbone,
    FFTNetClassifier,
    FFTNetViTBackbone,
    FFTNetViTImageClassifier,
)
from spectralmix.registry import BUILT_IN, get_token_mixer, token_mixer_names
from tests.distribute_worker import CASES
from tests.helpers import registered_mixers
from tests.tolerances import TOLERANCES

BACKEND = keras.config.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MLP = {
    "mlp_dense1/kernel": (None, "model"),
    "mlp_dense1/bias": ("model",),
    "mlp_dense2/kernel": ("model", None),
}
#: Weight path suffix -> mesh axis per dimension, for every weight that must be sharded.
SHARDED = {
    "fftnet": {
        "token_mixer/context_dense/kernel": (None, "model"),
        "token_mixer/context_dense/bias": ("model",),
        "token_mixer/modulation_dense/kernel": ("model", None),
        **MLP,
    },
    "attention": {
        **{f"token_mixer/{p}/kernel": (None, "model", None) for p in ("query", "key", "value")},
        **{f"token_mixer/{p}/bias": ("model", None) for p in ("query", "key", "value")},
        "token_mixer/attention_output/kernel": ("model", None, None),
        **MLP,
    },
    "fnet": MLP,
}


def _expected_axes(path, mixer):
    for suffix, axes in SHARDED[mixer].items():
        if path.endswith(suffix):
            return axes
    return None


def _run_worker(case, out):
    backend = CASES[case][0]
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": ROOT}
    env.pop("XLA_FLAGS", None)
    result = subprocess.run(
        [sys.executable, "-m", "tests.distribute_worker", case, str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{case} failed:\n{result.stderr[-4000:]}"
    return np.load(out)


@pytest.mark.distributed
@pytest.mark.parametrize("case", list(CASES))
def test_several_devices_train_like_one(case, tmp_path):
    backend, mode, num_devices, names = CASES[case]
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    data = _run_worker(case, tmp_path / "result.npz")
    tol = TOLERANCES["distributed"]
    for name in names:
        assert int(data[f"{name}/replicas"]) == num_devices, name
        single, spread = data[f"{name}/single_losses"], data[f"{name}/distributed_losses"]
        assert single.shape == spread.shape == (4,), name
        assert np.isfinite(single).all(), name
        np.testing.assert_allclose(spread, single, rtol=tol, atol=tol, err_msg=f"{name} losses")
        keys = sorted(k for k in data.files if k.startswith(f"{name}/single_w"))
        assert keys, name
        moved = max(
            float(np.abs(data[k] - data[k.replace("single", "initial")]).max()) for k in keys
        )
        assert moved > 100 * tol, f"{name}: training barely moved the weights ({moved})"
        for key in keys:
            np.testing.assert_allclose(
                data[key.replace("single", "distributed")],
                data[key],
                rtol=tol,
                atol=tol,
                err_msg=f"{name} weight {key}",
            )
        placed = [k for k in data.files if k.startswith(f"{name}/devices/")]
        if backend != "torch":  # torch: DDP keeps a full copy in every process
            assert len(placed) == len(keys), name
        for key in placed:
            assert int(data[key]) == num_devices, f"{key} on {int(data[key])} devices"
        if mode == "model":
            mixer = name.split("_")[-1] if name.startswith("sequence") else "fftnet"
            specs = [k for k in data.files if k.startswith(f"{name}/spec/")]
            sharded = 0
            for key in specs:
                path = key[len(f"{name}/spec/") :]
                expected = _expected_axes(path, mixer)
                got = tuple(s or None for s in data[key].tolist())
                if expected is None:
                    assert not any(got), f"{path} should be replicated, is {got}"
                else:
                    assert got == expected, f"{path}: {got} != {expected}"
                    sharded += 1
            assert sharded == len(SHARDED[mixer]), (name, sharded)


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "pipeline"}, ValueError, "Received: mode='pipeline'"),
        ({"num_devices": 0}, ValueError, "`num_devices` must be >= 1. Received: num_devices=0"),
        ({"num_devices": -2}, ValueError, "Received: num_devices=-2"),
        ({"num_devices": 2.0}, TypeError, "Received: num_devices=2.0"),
        ({"num_devices": True}, TypeError, "Received: num_devices=True"),
        ({"backend": "numpy"}, ValueError, "Received: backend='numpy'"),
        ({"mode": "model", "backend": "tensorflow"}, ValueError, "mode='data'.*MirroredStrategy"),
        ({"mode": "model", "backend": "torch"}, ValueError, "mode='data'.*fit_torch_ddp"),
    ],
)
def test_configure_devices_rejects(kwargs, error, match, monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    arguments = {"mode": "data", "num_devices": 2, "backend": "jax", **kwargs}
    with pytest.raises(error, match=match):
        distribute.configure_devices(**arguments)
    assert "XLA_FLAGS" not in os.environ


def test_configure_devices_sets_the_jax_host_device_count(monkeypatch):
    # As before JAX is imported: the flag replaces any earlier count and keeps other flags.
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_foo=1 --xla_force_host_platform_device_count=2")
    distribute.configure_devices("model", 8, "jax")
    assert os.environ["XLA_FLAGS"] == ("--xla_cpu_foo=1 --xla_force_host_platform_device_count=8")


@pytest.mark.skipif(BACKEND not in ("jax", "tensorflow"), reason="needs a started JAX or TF")
def test_configure_devices_too_late_is_an_error():
    keras.ops.convert_to_numpy(keras.ops.ones(2) + 1)  # the framework has started
    with pytest.raises(RuntimeError, match="Received: num_devices=4096"):
        distribute.configure_devices("data", 4096, BACKEND)
    distribute.configure_devices("data", 1, BACKEND)  # as many as there are: fine


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("pipeline",), {}, "Received: mode='pipeline'"),
        (("data", 0), {}, "Received: num_devices=0"),
        (("data", 1), {"model_axis_size": 1}, "mode='model' only.*mode='data'"),
        (("model", 1), {"model_axis_size": 0}, "Received: model_axis_size=0"),
    ],
)
def test_distribution_scope_rejects_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match), distribute.distribution_scope(*args, **kwargs):
        pass


@pytest.mark.skipif(BACKEND != "torch", reason="torch backend")
def test_distribution_scope_on_torch_names_fit_torch_ddp():
    with pytest.raises(ValueError, match="fit_torch_ddp"), distribute.distribution_scope():
        pass


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tensorflow backend")
def test_model_parallel_on_tensorflow_names_the_alternatives():
    with (
        pytest.raises(ValueError, match="mode='data'.*KERAS_BACKEND=jax"),
        distribute.distribution_scope("model"),
    ):
        pass


@pytest.mark.skipif(BACKEND != "jax", reason="jax backend")
def test_jax_scope_checks_the_device_count():
    visible = len(keras.distribution.list_devices())
    with (
        pytest.raises(ValueError, match=f"Received: num_devices={visible + 1}"),
        distribute.distribution_scope("data", visible + 1),
    ):
        pass
    with (
        pytest.raises(ValueError, match="model_axis_size=2, num_devices=1"),
        distribute.distribution_scope("model", 1, model_axis_size=2),
    ):
        pass
    with distribute.distribution_scope("model", 1) as engine:
        assert keras.distribution.distribution() is engine
        assert isinstance(engine, keras.distribution.ModelParallel)
    assert keras.distribution.distribution() is None


@pytest.mark.skipif(BACKEND == "torch", reason="not torch")
def test_fit_torch_ddp_needs_torch():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=f"Received: backend='{BACKEND}'"):
        distribute.fit_torch_ddp(model, np.ones((4, 2)), np.ones((4, 1)), num_processes=2,
                                 batch_size=4)  # fmt: skip


@pytest.mark.skipif(BACKEND != "torch", reason="torch backend")
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_processes": 0}, ValueError, "Received: num_processes=0"),
        ({"num_processes": "2"}, TypeError, "Received: num_processes='2'"),
        ({"batch_size": 3}, ValueError, "batch_size=3, num_processes=2"),
        ({"epochs": 0}, ValueError, "Received: epochs=0"),
        ({"y": np.ones((5, 1))}, ValueError, "len\\(x\\)=4, len\\(y\\)=5"),
    ],
)
def test_fit_torch_ddp_rejects(kwargs, error, match):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    arguments = {"x": np.ones((4, 2)), "y": np.ones((4, 1)), "num_processes": 2, "batch_size": 4}
    with pytest.raises(error, match=match):
        distribute.fit_torch_ddp(model, **{**arguments, **kwargs})


# --- layout map ------------------------------------------------------------------------------


def _mesh():
    return keras.distribution.DeviceMesh((1, 1), ["batch", "model"], ["cpu:0"])


def _model(family, mixer, variant="v1"):
    common = {
        "hidden_dim": 8,
        "num_layers": 2,
        "num_heads": 2,
        "token_mixer": mixer,
        "token_mixer_kwargs": {"variant": variant} if mixer == "fftnet" else None,
        "norm_first": variant == "v2",
    }
    if family == "sequence":
        backbone = FFTNetBackbone(vocabulary_size=10, max_sequence_length=8, **common)
        return FFTNetClassifier(backbone=backbone, num_classes=3)
    backbone = FFTNetViTBackbone(image_size=4, patch_size=2, num_channels=1, **common)
    return FFTNetViTImageClassifier(backbone=backbone, num_classes=3)


def _assert_layout(layout, model, mixer):
    sharded = 0
    for v in model.weights:
        expected = _expected_axes(v.path, mixer)
        got = layout[v.path]
        if expected is None:
            assert got is None, v.path
        else:
            assert got.axes == expected, v.path
            assert len(got.axes) == len(v.shape), v.path
            sharded += 1
    assert sharded == 2 * len(SHARDED[mixer])  # two blocks


@pytest.mark.parametrize(
    ("family", "mixer", "variant"),
    [
        ("sequence", "fftnet", "v1"),
        ("sequence", "fftnet", "v2"),
        ("sequence", "attention", "v1"),
        ("sequence", "fnet", "v1"),
        ("vit", "fftnet", "v1"),
        ("vit", "attention", "v2"),
    ],
)
def test_layout_map_shards_exactly_the_mlps(family, mixer, variant):
    model = _model(family, mixer, variant)
    _assert_layout(distribute.fftnet_layout_map(_mesh()), model, mixer)
    # Only the model's own mixer laid out: the same layouts for its weights.
    _assert_layout(distribute.fftnet_layout_map(_mesh(), token_mixers=[mixer]), model, mixer)


def test_layout_map_of_named_mixers_holds_only_their_rules():
    def rules(token_mixers):
        layout = distribute.fftnet_layout_map(_mesh(), token_mixers=token_mixers)
        return {key.rsplit("token_mixer/", 1)[-1] for key in layout if "token_mixer/" in key}

    assert rules(["fnet"]) == set()  # no weights: every one replicated
    assert rules([]) == set()
    assert rules(["fftnet"]) == {
        "context_dense/kernel",
        "context_dense/bias",
        "modulation_dense/kernel",
    }
    assert len(rules(["attention"])) == 3
    # The default: every registered mixer that declares a layout, built-ins included.
    laid_out = [
        name
        for name in token_mixer_names()
        if getattr(get_token_mixer(name), "model_parallel_layout", None) is not None
    ]
    assert {"fftnet", "attention"} <= set(laid_out)
    assert rules(None) == rules(laid_out)
    for token_mixers in (["fnet"], []):  # the block MLP is always laid out
        layout = distribute.fftnet_layout_map(_mesh(), token_mixers=token_mixers)
        assert layout["block_0/mlp_dense1/kernel"].axes == (None, "model")


def test_layout_map_uses_the_given_model_axis():
    mesh = keras.distribution.DeviceMesh((1, 1), ["data", "tensor"], ["cpu:0"])
    layout = distribute.fftnet_layout_map(mesh, model_axis="tensor", token_mixers=["attention"])
    assert layout["block_0/token_mixer/query/kernel"].axes == (None, "tensor", None)
    assert layout["block_0/mlp_dense2/kernel"].axes == ("tensor", None)


class _Sharded(keras.layers.Layer):
    """A toy mixer with a weight and a layout for it."""

    model_parallel_layout = MappingProxyType({"mix/kernel": ("model", None)})

    def build(self, input_shape):
        self.mix = keras.layers.Dense(input_shape[-1], name="mix")
        self.mix.build(input_shape)

    def call(self, inputs, mask=None, training=None):
        return self.mix(inputs)


class _Unlaid(keras.layers.Layer):
    """A toy mixer that declares no layout."""

    def call(self, inputs, mask=None, training=None):
        return inputs


@pytest.fixture
def toy_mixers():
    with registered_mixers({"toy_layout_sharded": _Sharded, "toy_layout_unlaid": _Unlaid}) as names:
        yield names


def test_layout_map_reads_a_registered_mixers_layout(toy_mixers):
    sharded, _ = toy_mixers
    # The default: every mixer that declares a layout; one that declares none is skipped.
    layout = distribute.fftnet_layout_map(_mesh())
    assert layout["block_0/token_mixer/mix/kernel"].axes == ("model", None)
    backbone = FFTNetBackbone(
        vocabulary_size=10, max_sequence_length=8, hidden_dim=8, num_layers=1,
        num_heads=2, token_mixer=sharded,
    )  # fmt: skip
    (kernel,) = [v for v in backbone.weights if v.path.endswith("token_mixer/mix/kernel")]
    assert layout[kernel.path].axes == ("model", None)
    # The built-ins' rules (fftnet's 3, attention's 3, ...) and the toy's 1: nothing of the
    # mixer without a layout.
    built_in = sum(len(get_token_mixer(name).model_parallel_layout) for name in BUILT_IN)
    assert len([key for key in layout if "token_mixer/" in key]) == built_in + 1


def test_layout_map_names_a_mixer_without_a_layout(toy_mixers):
    _, unlaid = toy_mixers
    with pytest.raises(ValueError, match=r"'toy_layout_unlaid' \(_Unlaid\) declares no"):
        distribute.fftnet_layout_map(_mesh(), token_mixers=["fftnet", unlaid])
    with pytest.raises(ValueError, match="model_parallel_layout"):
        distribute.fftnet_layout_map(_mesh(), token_mixers=[unlaid])
    with pytest.raises(ValueError, match="token_mixer='lstm'"):
        distribute.fftnet_layout_map(_mesh(), token_mixers=["lstm"])


def test_layout_map_rejects_a_missing_axis():
    with pytest.raises(ValueError, match="Received: model_axis='tensor'"):
        distribute.fftnet_layout_map(_mesh(), model_axis="tensor")
