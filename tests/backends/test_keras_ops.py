"""The portable keras.ops core, on whatever Keras backend this process runs."""

import keras

from spectralmix.backends import keras_ops
from tests.backends.shim_checks import KerasOpsShimChecks


class TestKerasOpsCore(KerasOpsShimChecks):
    shim = keras_ops
    framework = keras.config.backend()

    def jit(self, fn):
        if self.framework == "jax":
            import jax

            return jax.jit(fn)
        if self.framework == "tensorflow":
            import tensorflow as tf

            return tf.function(fn)
        return fn  # torch: keras.ops wrappers are eager-only here; the native core is compiled

    def test_float64_inputs_stay_float64(self, rng):
        if self.framework == "jax":
            return  # float64 needs jax_enable_x64 (covered for the other backends)
        super().test_float64_inputs_stay_float64(rng)
