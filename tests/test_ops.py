"""keras.ops building blocks against the oracle, on the active backend."""

import keras
import numpy as np
import pytest
from keras import ops

from spectralmix import ops as spectral_ops
from spectralmix import reference as R
from tests.helpers import BACKEND, assert_close, finite_difference_grads, grad_of


@pytest.mark.parametrize("epsilon", [0.0, 1e-3, 0.5])
def test_mod_relu_matches_oracle(rng, epsilon):
    re, im = rng.standard_normal((2, 5, 7))
    bias = rng.standard_normal(7)
    actual = spectral_ops.mod_relu(
        *(ops.convert_to_tensor(a.astype("float32")) for a in (re, im, bias)), epsilon
    )
    for a, e in zip(actual, R.mod_relu(re, im, bias, epsilon), strict=True):
        assert_close(a, e)


def test_gelu_magnitude_matches_oracle(rng):
    re, im = rng.standard_normal((2, 4, 6))
    actual = spectral_ops.gelu_magnitude(
        ops.convert_to_tensor(re.astype("float32")), ops.convert_to_tensor(im.astype("float32"))
    )
    for a, e in zip(actual, R.gelu_magnitude(re, im), strict=True):
        assert_close(a, e)


def test_mod_relu_gradient_finite_at_zero():
    zeros = np.zeros((3,), "float32")

    def fn(re, im, b):
        out_re, out_im = spectral_ops.mod_relu(re, im, b)
        return out_re + out_im

    grads = grad_of(fn, [zeros, zeros, np.full(3, 0.5, "float32")], np.ones(3), BACKEND)
    for g in grads:
        assert np.isfinite(g).all()


@pytest.mark.parametrize("epsilon", [0.0, 0.5])
def test_mod_relu_gradient_matches_finite_differences(rng, epsilon):
    re, im = rng.standard_normal((2, 11))
    bias = rng.standard_normal(11) * 0.5
    cot = rng.standard_normal(11)

    def fn(r, i, b):
        out_re, out_im = spectral_ops.mod_relu(r, i, b, epsilon)
        return out_re + 2 * out_im

    def oracle(r, i, b):
        out_re, out_im = R.mod_relu(r, i, b, epsilon)
        return out_re + 2 * out_im

    expected = finite_difference_grads(oracle, [re, im, bias], cot)
    actual = grad_of(fn, [a.astype("float32") for a in (re, im, bias)], cot, BACKEND)
    for a, e in zip(actual, expected, strict=True):
        assert_close(a, e, "float32_grad", scale=True)


def test_mod_relu_jacobian_bounded_near_zero():
    """|z| from 0 to 1e-2, b = 0.5 > 0: every Jacobian entry of the clamped form is at most
    2 + b / epsilon (its operator-norm bound); the exact form's grows as b / |z|."""
    bias, epsilon = 0.5, 1e-3
    mags = np.concatenate([[0.0], np.logspace(-12, -2, 21)])
    angle = np.linspace(0.1, 6.0, mags.size)
    re, im = (mags * np.cos(angle)).astype("float32"), (mags * np.sin(angle)).astype("float32")
    b = np.full(mags.size, bias, "float32")

    def jacobian(eps):
        rows = []
        for part in (0, 1):

            def fn(r, i, b_, part=part):
                return spectral_ops.mod_relu(r, i, b_, eps)[part]

            rows += grad_of(fn, [re, im, b], np.ones(mags.size), BACKEND)[:2]
        return np.abs(np.stack(rows))

    clamped = jacobian(epsilon)
    assert np.isfinite(clamped).all()
    assert clamped.max() <= 2 + bias / epsilon
    assert jacobian(0.0)[:, mags > 0].max() > 1e6 * (2 + bias / epsilon)


@pytest.mark.parametrize(
    ("activation", "epsilon", "gain"),
    [("modrelu", 0.0, 1.0), ("modrelu", 0.5, 3.0), ("gelu", 0.0, 2.0)],
)
def test_filter_spectrum_matches_oracle(rng, activation, epsilon, gain):
    """`gain · activation(F · scale [+ shift])`, the oracle's filter step (`R.spectral_core`)."""
    re, im = rng.standard_normal((2, 3, 4, 5))
    scale, shift = 1 + 0.5 * rng.standard_normal((2, 3, 1, 5))
    if activation == "modrelu":
        expected = R.mod_relu(re * scale, im * scale, shift, epsilon)
    else:
        expected = R.gelu_magnitude(re * scale + shift, im * scale)
    tensors = (ops.convert_to_tensor(a.astype("float32")) for a in (re, im, scale, shift))
    actual = spectral_ops.filter_spectrum(
        *tensors, activation=activation, epsilon=epsilon, gain=gain
    )
    for a, e in zip(actual, expected, strict=True):
        assert_close(a, gain * e, scale=True)


def test_filter_spectrum_bad_activation():
    one = ops.ones((2,))
    with pytest.raises(ValueError, match="activation='relu'"):
        spectral_ops.filter_spectrum(one, one, one, one, activation="relu")


@pytest.mark.parametrize(("length", "max_length"), [(16, 16), (9, 16), (40, 16), (16, 15), (7, 8)])
def test_resample_matches_oracle(rng, length, max_length):
    values = rng.standard_normal((2, 3, max_length // 2 + 1))
    expected = R.resample_spectrum(values, length, max_length)
    assert_close(
        spectral_ops.resample_spectrum(
            ops.convert_to_tensor(values.astype("float32")), length, max_length
        ),
        expected,
    )


def test_resample_identity_is_exact(rng):
    values = rng.standard_normal((3, 9)).astype("float32")
    out = spectral_ops.resample_spectrum(ops.convert_to_tensor(values), 16, 16)
    np.testing.assert_array_equal(ops.convert_to_numpy(out), values)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="run-time lengths exist in TF graphs only")
@pytest.mark.parametrize("length", [9, 16, 40])
def test_resample_with_run_time_length(rng, length):
    import tensorflow as tf

    values = rng.standard_normal((2, 9)).astype("float32")
    fn = tf.function(
        lambda v, n: spectral_ops.resample_spectrum(v, n, 16),
        input_signature=[tf.TensorSpec((2, 9)), tf.TensorSpec((), tf.int32)],
    )
    assert_close(fn(values, length), R.resample_spectrum(values.astype(np.float64), length, 16))


def test_masked_mean_tokens(rng):
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0]], bool)
    out = ops.convert_to_numpy(spectral_ops.masked_mean_tokens(ops.convert_to_tensor(x), mask))
    np.testing.assert_allclose(out[0], x[0, :2].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(out[1], 0.0)  # all padding: zero context, not NaN
    assert_close(spectral_ops.masked_mean_tokens(keras.ops.convert_to_tensor(x), None), x.mean(1))
