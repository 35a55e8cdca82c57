"""Checks every spectral core passes, run by `test_keras_ops.py`, `test_torch.py` and
`test_dft.py`: agreement with the float64 oracle, gradients against finite differences, finite
gradients at z = 0, and compiled execution equal to eager."""

from __future__ import annotations

import numpy as np
import pytest

from spectralmix import reference as R
from tests.helpers import finite_difference_grads, grad_of
from tests.tolerances import TOLERANCES

F32, F32_GRAD = TOLERANCES["float32_op"], TOLERANCES["float32_grad"]


def _close(actual, expected, tol):
    actual = np.asarray(actual, dtype=np.float64)
    atol = tol * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=atol)


class ShimChecks:
    """Subclasses set `shim` (the module), `framework` and `to_numpy`/`to_tensor`/`jit`."""

    shim = None
    framework = ""

    def to_tensor(self, a):
        raise NotImplementedError

    def to_numpy(self, t):
        raise NotImplementedError

    def jit(self, fn):
        raise NotImplementedError

    def _inputs(self, rng, length=12, batch_scale=True, dtype="float32"):
        k = length // 2 + 1
        x = rng.standard_normal((2, length, 8))
        scale = 1 + 0.5 * rng.standard_normal((2 if batch_scale else 1, 4, k))
        shift = -0.1 + 0.3 * rng.standard_normal((1, 4, k))
        return [a.astype(dtype) for a in (x, scale, shift)]

    def _filter(self, activation, epsilon=0.0):
        shim = self.shim

        def fn(x, scale, shift):
            return shim.spectral_filter(
                x, scale, shift, num_heads=4, activation=activation, epsilon=epsilon
            )

        return fn

    @pytest.mark.parametrize("activation", ["modrelu", "gelu"])
    @pytest.mark.parametrize("length", [12, 13])
    @pytest.mark.parametrize("batch_scale", [True, False])
    def test_spectral_filter_matches_oracle(self, rng, activation, length, batch_scale):
        args = self._inputs(rng, length, batch_scale)
        expected = R.spectral_core(
            *[a.astype(np.float64) for a in args], num_heads=4, activation=activation
        )
        actual = self._filter(activation)(*[self.to_tensor(a) for a in args])
        _close(self.to_numpy(actual), expected, F32)

    def test_fourier_mixing_matches_oracle(self, rng):
        x = rng.standard_normal((2, 9, 6))
        actual = self.to_numpy(self.shim.fourier_mixing(self.to_tensor(x.astype("float32"))))
        _close(actual, R.fourier_mixing(x), F32)

    @pytest.mark.parametrize("activation", ["modrelu", "gelu"])
    def test_gradients_match_finite_differences(self, rng, activation):
        args = self._inputs(rng, length=7)
        cotangent = rng.standard_normal((2, 7, 8))

        def oracle(x, scale, shift):
            return R.spectral_core(x, scale, shift, num_heads=4, activation=activation)

        expected = finite_difference_grads(oracle, args, cotangent)
        actual = grad_of(self._filter(activation), args, cotangent, self.framework)
        for a, e in zip(actual, expected, strict=True):
            _close(a, e, F32_GRAD)

    @pytest.mark.parametrize("activation", ["modrelu", "gelu"])
    def test_values_and_gradients_finite_at_zero(self, rng, activation):
        x, scale, shift = self._inputs(rng, length=8)
        x = np.zeros_like(x)
        if activation == "gelu":
            shift = np.zeros_like(shift)  # G = F * scale + shift must be 0 everywhere
        cotangent = rng.standard_normal(x.shape)
        y = self.to_numpy(self._filter(activation)(*map(self.to_tensor, (x, scale, shift))))
        np.testing.assert_array_equal(y, 0.0)
        for g in grad_of(self._filter(activation), [x, scale, shift], cotangent, self.framework):
            assert np.isfinite(g).all()

    def test_clamped_modrelu_matches_oracle_and_finite_differences(self, rng):
        """epsilon = 0.5 puts many of these inputs' |G| below the floor, so both branches of
        `ReLU(|G| + b) / max(|G|, epsilon)` are checked, values and gradients."""
        args = self._inputs(rng, length=7)
        cotangent = rng.standard_normal((2, 7, 8))

        def oracle(x, scale, shift):
            return R.spectral_core(x, scale, shift, num_heads=4, epsilon=0.5)

        fn = self._filter("modrelu", epsilon=0.5)
        _close(self.to_numpy(fn(*map(self.to_tensor, args))), oracle(*args), F32)
        expected = finite_difference_grads(oracle, args, cotangent)
        for a, e in zip(grad_of(fn, args, cotangent, self.framework), expected, strict=True):
            _close(a, e, F32_GRAD)

    @pytest.mark.parametrize("size", [0.0, 1e-9, 1e-6, 1e-3])
    def test_input_gradient_bounded_near_zero(self, rng, size):
        """With b = 0.5 > 0 and spectral magnitudes from 0 to ~1e-2, the input gradient obeys
        `|g| <= sqrt(2) (2 + b / epsilon) |cotangent|` (rfft is a contraction, modReLU's
        Jacobian is at most `2 + b / epsilon`, irfft at most sqrt(2)); the exact form
        (epsilon = 0) breaks that bound by orders of magnitude at small inputs."""
        x, scale, shift = self._inputs(rng, length=8)
        x, shift = size * x, np.full_like(shift, 0.5)
        cotangent = rng.standard_normal(x.shape)
        epsilon = 1e-3
        bound = np.sqrt(2) * (2 + 0.5 / epsilon) * np.linalg.norm(cotangent)
        grads = grad_of(
            self._filter("modrelu", epsilon), [x, scale, shift], cotangent, self.framework
        )
        assert all(np.isfinite(g).all() for g in grads)
        assert np.linalg.norm(grads[0]) <= bound
        if 0 < size <= 1e-6:
            exact = grad_of(self._filter("modrelu"), [x, scale, shift], cotangent, self.framework)
            assert np.linalg.norm(exact[0]) > 100 * bound

    def test_compiled_matches_eager(self, rng):
        args = [self.to_tensor(a) for a in self._inputs(rng, length=16)]
        fn = self._filter("modrelu")
        _close(self.to_numpy(self.jit(fn)(*args)), self.to_numpy(fn(*args)), F32)

    def test_float64_inputs_stay_float64(self, rng):
        args = self._inputs(rng, length=10, dtype="float64")
        out = self.to_numpy(self._filter("modrelu")(*map(self.to_tensor, args)))
        assert out.dtype == np.float64
        expected = R.spectral_core(*args, num_heads=4)
        _close(out, expected, TOLERANCES["float64"])


class KerasOpsShimChecks(ShimChecks):
    """For cores written on `keras.ops` (the portable core, the DFT core): tensors of the
    active Keras backend."""

    def to_tensor(self, a):
        import keras

        return keras.ops.convert_to_tensor(a)

    def to_numpy(self, t):
        import keras

        return np.asarray(keras.ops.convert_to_numpy(t))
