import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from spectralmix.backends import tensorflow as tf_shim  # noqa: E402
from tests.backends.shim_checks import F32, ShimChecks  # noqa: E402


class TestTensorFlowShim(ShimChecks):
    shim = tf_shim
    framework = "tensorflow"

    def to_tensor(self, a):
        return tf.constant(a)

    def to_numpy(self, t):
        return np.asarray(t)

    def jit(self, fn):
        return tf.function(fn)

    def test_xla_matches_eager(self, rng):
        args = [self.to_tensor(a) for a in self._inputs(rng, length=16)]
        fn = self._filter("modrelu")
        np.testing.assert_allclose(
            tf.function(fn, jit_compile=True)(*args), fn(*args), rtol=F32, atol=F32
        )

    def test_unknown_length_at_trace_time(self, rng):
        spec = [
            tf.TensorSpec((None, None, 8)),
            tf.TensorSpec((None, 4, None)),
            tf.TensorSpec((1, 4, None)),
        ]
        traced = tf.function(self._filter("modrelu"), input_signature=spec)
        for length in (10, 11):
            args = [self.to_tensor(a) for a in self._inputs(np.random.default_rng(1), length)]
            np.testing.assert_allclose(
                traced(*args), self._filter("modrelu")(*args), rtol=F32, atol=F32
            )
