import keras
import pytest

from spectralmix import backends


def test_active_backend_gets_its_native_core():
    core = backends.get_backend()
    expected = keras.config.backend()
    assert core.name == (expected if expected in backends.NATIVE_BACKENDS else "keras_ops")
    assert backends.get_backend() is core  # chosen once


@pytest.mark.parametrize("name", ["jax", "tensorflow", "numpy", "openvino", "keras_ops"])
def test_other_backends_get_the_keras_ops_core(name):
    assert backends.get_backend(name).name == "keras_ops"


def test_every_core_implements_the_interface():
    core = backends.get_backend()
    for member in ("spectral_filter", "fourier_mixing"):
        assert callable(getattr(core, member))


def test_bad_name_type():
    with pytest.raises(TypeError, match="name=3"):
        backends.get_backend(3)
