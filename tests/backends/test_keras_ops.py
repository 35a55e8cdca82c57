"""The `keras.ops` core — what JAX, TensorFlow and every backend without a module of its own
run — on whatever Keras backend this process runs."""

import keras
import numpy as np
import pytest

from spectralmix.backends import keras_ops
from spectralmix.ops import filter_spectrum
from tests.backends.shim_checks import F32, KerasOpsShimChecks
from tests.helpers import grad_of
from tests.tolerances import TOLERANCES

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


def _edge_spectrum(rng):
    """A spectrum `(re, im)` `(B, H, d, K)` with a head that is all zero (`S = 0`), a filter
    `(B, H, 1, K)` with an entry exactly 0 and negative entries, and a shift `(1, H, 1, K)`
    with positive entries (relu(b) > 0 at |G| = 0) and a head of zeros."""
    re, im = rng.standard_normal((2, 3, 4, 2, 6))
    re[1, 0], im[1, 0] = 0.0, 0.0
    scale = rng.standard_normal((3, 4, 1, 6))
    scale[0, 1, 0, 2] = 0.0
    shift = 0.3 * rng.standard_normal((1, 4, 1, 6))
    shift[0, 2], shift[0, 3] = 0.2, 0.0
    return [a.astype("float32") for a in (re, im, scale, shift)]


@pytest.mark.skipif(BACKEND not in ("jax", "tensorflow"), reason="hand-written on JAX and TF")
@pytest.mark.parametrize(
    ("activation", "epsilon"), [("modrelu", 0.0), ("modrelu", 1e-3), ("modrelu", 0.5), ("gelu", 0)]
)
@pytest.mark.parametrize("gain", [1.0, 3.0])
def test_hand_written_filter_gradient_matches_autodiff(rng, activation, epsilon, gain):
    """`filter_with_gradient`'s backward (the spectrum, the filter and the shift) against the
    backend's autodiff of the plain formula `filter_spectrum`, with zero spectra, zero and
    negative filter entries, positive shifts, a filter broadcast over channels and one over
    the batch; epsilon 0.5 puts most magnitudes below the clamp. Values are the same ops."""
    args = _edge_spectrum(rng)
    cotangent = rng.standard_normal((2, 3, 4, 2, 6)).astype("float32")

    def stacked(filter_fn):
        def fn(re, im, scale, shift):
            out = filter_fn(re, im, scale, shift, activation=activation, epsilon=epsilon, gain=gain)
            return keras.ops.stack(out)

        return fn

    expected = grad_of(stacked(filter_spectrum), args, cotangent, BACKEND)
    actual = grad_of(stacked(keras_ops.filter_with_gradient), args, cotangent, BACKEND)
    tol = TOLERANCES["float32_grad"]
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol * max(1.0, np.abs(e).max()))
    values = keras.ops.convert_to_numpy(stacked(keras_ops.filter_with_gradient)(*args))
    np.testing.assert_array_equal(
        values, keras.ops.convert_to_numpy(stacked(filter_spectrum)(*args))
    )
