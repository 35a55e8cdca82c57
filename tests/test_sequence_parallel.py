"""spectralmix.sequence_parallel: every spectral mixer split over the tokens equals one device.

The `distributed` tests start a fresh process per framework (`tests/sequence_parallel_worker.py`:
JAX with 8 simulated CPU devices, torch with 2 gloo processes) that computes each spectral
mixer's outputs and gradients (inputs and weights) on one device and sharded, with and without
a padding mask, trains a small FFTNetClassifier both ways on sequences whose length the device
count does not divide, and records the errors of the bad inputs. The other tests (padding,
arguments, TensorFlow's refusal) run in-process on any backend.
"""

import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from spectralmix import distribute, sequence_parallel
from tests.sequence_parallel_worker import DEVICES, MIXERS
from tests.tolerances import TOLERANCES

BACKEND = keras.config.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", params=list(DEVICES))
def worker(request, tmp_path_factory):
    backend = request.param
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    out = tmp_path_factory.mktemp(backend) / "result.npz"
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": ROOT}
    env.pop("XLA_FLAGS", None)
    result = subprocess.run(
        [sys.executable, "-m", "tests.sequence_parallel_worker", backend, str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{backend} worker failed:\n{result.stderr[-4000:]}"
    return backend, dict(np.load(out))


def _close(got, expected, what):
    """Within float32 rounding, relative to the largest entry (as `tests/helpers.assert_close`)."""
    tol = TOLERANCES["distributed"]
    scale = max(float(np.abs(expected).max()), 1.0)
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.mark.distributed
@pytest.mark.parametrize("mixer", list(MIXERS))
@pytest.mark.parametrize("masked", ["nomask", "mask"])
def test_sharded_mixer_equals_one_device(worker, mixer, masked):
    backend, data = worker
    key = f"{mixer}/{masked}"
    single = sorted(k for k in data if k.startswith(f"{key}/single/"))
    grads = [k for k in single if "/grad/" in k]
    assert grads or mixer == "fnet", key  # every weight's gradient is compared
    for name in single:
        if name.endswith("all_to_alls"):
            continue
        expected, got = data[name], data[name.replace("/single/", "/sharded/")]
        assert got.shape == expected.shape, name
        assert np.abs(expected).max() > 0, name  # a real signal, not zeros
        _close(got, expected, name)
    if backend == "jax":  # the sharded run did communicate; one device did not
        assert int(data[f"{key}/single/all_to_alls"]) == 0
        assert int(data[f"{key}/sharded/all_to_alls"]) >= 2
    if masked == "mask":  # padded outputs are zero
        assert not np.abs(data[f"{key}/sharded/y"][1, 11:]).any()


@pytest.mark.distributed
def test_sequence_parallel_training_equals_one_device(worker):
    backend, data = worker
    assert int(data["train/devices"]) == DEVICES[backend]
    single, spread = data["train/single_losses"], data["train/sequence_losses"]
    assert single.shape == spread.shape == (3,)
    assert np.isfinite(single).all()
    tol = TOLERANCES["distributed"]
    np.testing.assert_allclose(spread, single, rtol=tol, atol=tol, err_msg="losses")
    moved = np.abs(data["train/single_weights"] - data["train/initial_weights"]).max()
    assert moved > 100 * tol, f"training barely moved the weights ({moved})"
    np.testing.assert_allclose(
        data["train/sequence_weights"], data["train/single_weights"], rtol=tol, atol=tol
    )


@pytest.mark.distributed
def test_harness_pads_batches_for_sequence_parallelism(worker):
    """`harness.train(distribute="sequence")` pads 13-token batches (+ a class token) to 16 and
    trains as one device does on the same sequences given padded."""
    backend, data = worker
    if backend != "jax":
        pytest.skip("the harness's sequence mode is JAX's (torch: fit_torch_sequence)")
    tol = TOLERANCES["distributed"]
    single, spread = data["harness/single_weights"], data["harness/sequence_weights"]
    np.testing.assert_allclose(spread, single, rtol=tol, atol=tol)
    assert float(data["harness/sequence_val"]) == float(data["harness/single_val"])


def _line(message, text):
    """The line of `message` holding `text` (Keras adds the call's arguments below a layer's
    error): the error itself is that one line."""
    lines = [line for line in str(message).splitlines() if text in line]
    assert len(lines) == 1, message
    return lines[0]


@pytest.mark.distributed
def test_bad_device_counts_are_one_line_errors(worker):
    backend, data = worker
    if backend == "jax":  # 8 devices, 4 heads
        heads = _line(data["error/heads"], "sequence parallelism")
        assert "divide num_heads (4). Received: num_devices=8, num_heads=4" in heads, heads
        channels = _line(data["error/channels"], "sequence parallelism")
        assert "divide channels (12). Received: num_devices=8, channels=12" in channels, channels
        length = _line(data["error/length"], "pad the inputs")
        assert "Received: sequence_length=12, num_devices=8" in length, length
    else:  # 16 processes, 8 heads: refused before any process starts
        heads = _line(data["error/heads"], "sequence parallelism")
        assert "divide num_heads (8). Received: num_devices=16, num_heads=8" in heads, heads
    attention = _line(data["error/attention"], "no sequence-parallel form")
    assert "attention is not sharded" in attention


# --- in-process ----------------------------------------------------------------------------


def test_pad_tokens():
    x = np.arange(1, 8).reshape(1, 7)
    assert sequence_parallel.pad_tokens(x, 4).tolist() == [[1, 2, 3, 4, 5, 6, 7, 0]]
    assert sequence_parallel.pad_tokens(x, 7) is not None
    np.testing.assert_array_equal(sequence_parallel.pad_tokens(x, 7), x)
    assert sequence_parallel.pad_tokens(x, 3, extra_tokens=1).shape == (1, 8)
    features = np.ones((2, 5, 3))
    assert sequence_parallel.pad_tokens(features, 2).shape == (2, 6, 3)
    assert not sequence_parallel.pad_tokens(features, 2)[:, 5].any()
    with pytest.raises(ValueError, match="Received: num_devices=0"):
        sequence_parallel.pad_tokens(x, 0)


def test_tensorflow_is_refused_in_one_line(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with pytest.raises(ValueError, match="mode='sequence', backend='tensorflow'") as error:
        distribute.configure_devices("sequence", 2, "tensorflow")
    assert "\n" not in str(error.value)
    assert "sequence" in distribute.MODES


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tensorflow backend")
def test_tensorflow_scope_is_refused():
    with (
        pytest.raises(ValueError, match="tf.distribute has no all-to-all"),
        distribute.distribution_scope("sequence", 1),
    ):
        pass


def test_scope_takes_a_communicator():
    with pytest.raises(TypeError, match="Received: communicator=3"), sequence_parallel.scope(3):
        pass
    assert not sequence_parallel.is_active()


@pytest.mark.skipif(BACKEND != "jax", reason="jax backend")
def test_one_device_jax_scope_is_the_layer():
    # One device: the sharded path (shard_map, all-to-alls of one block) gives the layer's
    # outputs; the data layout shards the tokens (axis 1) and replicates the weights.
    from spectralmix.layers import AdaptiveSpectralFilter

    x = np.random.default_rng(0).standard_normal((2, 8, 8)).astype("float32")
    layer = AdaptiveSpectralFilter(num_heads=2)
    expected = keras.ops.convert_to_numpy(layer(x))
    with distribute.distribution_scope("sequence", 1) as engine:
        assert isinstance(engine, sequence_parallel.SequenceParallel)
        assert sequence_parallel.is_active()
        got = keras.ops.convert_to_numpy(layer(x))
        assert engine.get_data_layout((4, 8)).axes == (None, "sequence")
        assert engine.get_data_layout((4,)).axes == (None,)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(BACKEND != "torch", reason="torch backend")
def test_fit_torch_sequence_rejects():
    from spectralmix.models import FFTNetBackbone, FFTNetClassifier

    backbone = FFTNetBackbone(
        vocabulary_size=5, max_sequence_length=4, hidden_dim=8, num_layers=1, num_heads=2,
        class_token=True,
    )  # fmt: skip
    model = FFTNetClassifier(backbone=backbone, num_classes=2)
    x, y = np.ones((4, 4), "int32"), np.zeros(4, "int32")
    with pytest.raises(ValueError, match="pooling='cls'"):
        distribute.fit_torch_sequence(model, x, y, num_processes=2, batch_size=2)
    with pytest.raises(ValueError, match="Received: num_processes=0"):
        distribute.fit_torch_sequence(model, x, y, num_processes=0, batch_size=2)
