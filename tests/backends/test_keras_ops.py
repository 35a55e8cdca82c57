"""The `keras.ops` core — what JAX, TensorFlow and every backend without a module of its own
run — on whatever Keras backend this process runs."""

import keras
import numpy as np
import pytest

from spectralmix.backends import keras_ops
from tests.backends.shim_checks import F32, KerasOpsShimChecks

BACKEND = keras.config.backend()


class TestKerasOpsCore(KerasOpsShimChecks):
    shim = keras_ops
    framework = BACKEND

    def jit(self, fn):
        if self.framework == "jax":
            import jax

            return jax.jit(fn)
        if self.framework == "tensorflow":
            import tensorflow as tf

            return tf.function(fn)
        import torch

        torch._dynamo.reset()
        return torch.compile(fn, fullgraph=True)  # the whole core traces without a graph break

    def test_float64_inputs_stay_float64(self, rng):
        if self.framework == "jax":
            pytest.skip("JAX runs float64 only with jax_enable_x64")
        super().test_float64_inputs_stay_float64(rng)

    @pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA through tf.function(jit_compile)")
    def test_xla_matches_eager(self, rng):
        import tensorflow as tf

        args = [self.to_tensor(a) for a in self._inputs(rng, length=16)]
        fn = self._filter("modrelu")
        np.testing.assert_allclose(
            tf.function(fn, jit_compile=True)(*args), fn(*args), rtol=F32, atol=F32
        )

    @pytest.mark.skipif(BACKEND != "tensorflow", reason="only TF graphs carry run-time lengths")
    @pytest.mark.parametrize("activation", ["modrelu", "gelu"])
    def test_unknown_length_at_trace_time(self, activation):
        import tensorflow as tf

        spec = [
            tf.TensorSpec((None, None, 8)),
            tf.TensorSpec((None, 4, None)),
            tf.TensorSpec((1, 4, None)),
        ]
        traced = tf.function(self._filter(activation, epsilon=1e-3), input_signature=spec)
        for length in (10, 11):
            args = [self.to_tensor(a) for a in self._inputs(np.random.default_rng(1), length)]
            np.testing.assert_allclose(
                traced(*args), self._filter(activation, epsilon=1e-3)(*args), rtol=F32, atol=F32
            )
