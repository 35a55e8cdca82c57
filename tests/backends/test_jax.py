import numpy as np
import pytest

jax = pytest.importorskip("jax")

from spectralmix.backends import jax as jax_shim  # noqa: E402
from tests.backends.shim_checks import ShimChecks  # noqa: E402


class TestJaxShim(ShimChecks):
    shim = jax_shim
    framework = "jax"

    def to_tensor(self, a):
        return jax.numpy.asarray(a)

    def to_numpy(self, t):
        return np.asarray(t)

    def jit(self, fn):
        return jax.jit(fn)

    def test_float64_inputs_stay_float64(self, rng):
        if not jax.config.jax_enable_x64:
            pytest.skip("JAX runs float64 only with jax_enable_x64")
