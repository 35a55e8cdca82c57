"""The DFT-as-matmul core (`spectralmix.backends.dft`) on whatever Keras backend this process
runs: the shared core checks (oracle, finite differences, zeros, compiled, float64), then
agreement with the backend's FFT core in values and gradients at odd and even lengths, and the
run-time-length matrices against NumPy's FFT."""

import keras
import numpy as np
import pytest

from spectralmix import reference as R
from spectralmix.backends import dft, get_backend, spectral_core
from tests.backends.shim_checks import KerasOpsShimChecks
from tests.helpers import BACKEND, assert_close, grad_of, jax_jit
from tests.tolerances import TOLERANCES


class TestDftCore(KerasOpsShimChecks):
    shim = dft
    framework = BACKEND

    def jit(self, fn):
        if self.framework == "jax":
            import jax

            return jax.jit(fn)
        if self.framework == "tensorflow":
            import tensorflow as tf

            return tf.function(fn, jit_compile=True)
        import torch

        torch._dynamo.reset()
        # Not fullgraph: the matrices of a known length are NumPy constants, built (and cached)
        # outside the graph, which dynamo cannot trace and runs eagerly.
        return torch.compile(fn)

    def test_float64_inputs_stay_float64(self, rng):
        if self.framework == "jax":
            pytest.skip("JAX runs float64 only with jax_enable_x64")
        super().test_float64_inputs_stay_float64(rng)


def _filter_inputs(rng, length, channels=8, heads=4):
    bins = length // 2 + 1
    x = rng.standard_normal((2, length, channels))
    scale = 1 + 0.5 * rng.standard_normal((2, heads, bins))
    shift = -0.1 + 0.3 * rng.standard_normal((1, heads, bins))
    return [a.astype("float32") for a in (x, scale, shift)]


def _core_fn(core, activation, epsilon=0.0):
    def fn(x, scale, shift):
        return core.spectral_filter(
            x, scale, shift, num_heads=4, activation=activation, epsilon=epsilon
        )

    return fn


@pytest.mark.parametrize("activation", ["modrelu", "gelu"])
@pytest.mark.parametrize("length", [1, 2, 7, 8, 15, 16, 33, 64])
def test_values_and_gradients_equal_the_fft_core(rng, activation, length):
    args = _filter_inputs(rng, length)
    cotangent = rng.standard_normal(args[0].shape).astype("float32")
    native = get_backend(BACKEND)
    tensors = [keras.ops.convert_to_tensor(a) for a in args]
    expected = keras.ops.convert_to_numpy(jax_jit(_core_fn(native, activation))(*tensors))
    assert_close(jax_jit(_core_fn(dft, activation))(*tensors), expected)
    want = grad_of(_core_fn(native, activation), args, cotangent, BACKEND)
    got = grad_of(_core_fn(dft, activation), args, cotangent, BACKEND)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, "float32_grad", scale=True)


@pytest.mark.parametrize("length", [8, 13, 64])
def test_fft_and_dft_agree_on_exact_zero_bins_with_the_default_epsilon(rng, length):
    """Channels constant over the tokens: every bin but DC is 0 in exact arithmetic, an exact
    0 from an FFT and round-off (~1e-8) from the DFT's matmuls. With a positive bias b the exact
    modReLU maps both to magnitude b in unrelated directions (measured: outputs 0.2–1.0 apart,
    input gradients up to 1e16); with epsilon = 1e-3 (the layers' default) the map is linear
    below epsilon, so round-off delta becomes at most (2 + b / epsilon) delta: the two cores
    agree within the float32 tolerance scaled by that bound."""
    x = np.repeat(rng.standard_normal((2, 1, 8)), length, axis=1).astype("float32")
    bins = length // 2 + 1
    scale = (1 + 0.3 * rng.standard_normal((2, 4, bins))).astype("float32")
    bias, epsilon = 0.2, 1e-3
    shift = np.full((1, 4, bins), bias, "float32")
    cotangent = rng.standard_normal(x.shape).astype("float32")
    native, args = get_backend(BACKEND), [x, scale, shift]
    tensors = [keras.ops.convert_to_tensor(a) for a in args]
    tol = TOLERANCES["float32_op"] * (2 + bias / epsilon)
    want = keras.ops.convert_to_numpy(jax_jit(_core_fn(native, "modrelu", epsilon))(*tensors))
    got = keras.ops.convert_to_numpy(jax_jit(_core_fn(dft, "modrelu", epsilon))(*tensors))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    want = grad_of(_core_fn(native, "modrelu", epsilon), args, cotangent, BACKEND)
    got = grad_of(_core_fn(dft, "modrelu", epsilon), args, cotangent, BACKEND)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * max(1.0, np.abs(w).max()))


@pytest.mark.parametrize("length", [1, 6, 9, 32])
def test_fourier_mixing_equals_the_fft_core(rng, length):
    x = rng.standard_normal((2, length, 6)).astype("float32")
    cotangent = rng.standard_normal(x.shape).astype("float32")
    native = get_backend(BACKEND)
    expected = keras.ops.convert_to_numpy(native.fourier_mixing(keras.ops.convert_to_tensor(x)))
    assert_close(dft.fourier_mixing(keras.ops.convert_to_tensor(x)), expected, scale=True)
    assert_close(
        dft.fourier_mixing(keras.ops.convert_to_tensor(x)), R.fourier_mixing(x), scale=True
    )
    (want,) = grad_of(native.fourier_mixing, [x], cotangent, BACKEND)
    (got,) = grad_of(dft.fourier_mixing, [x], cotangent, BACKEND)
    assert_close(got, want, "float32_grad", scale=True)


@pytest.mark.parametrize("length", [1, 2, 5, 12, 13])
def test_matrices_are_the_orthonormal_real_dft(length, rng):
    x = rng.standard_normal((length, 3))
    forward, inverse = (keras.ops.convert_to_numpy(m) for m in dft.rdft_matrices(length))
    forward, inverse = np.asarray(forward, np.float64), np.asarray(inverse, np.float64)
    spectrum = np.fft.rfft(x, axis=0, norm="ortho")
    k = length // 2 + 1
    assert_close(forward @ x, np.concatenate([spectrum.real, spectrum.imag]), "float32_op")
    z = rng.standard_normal((k, 3)) + 1j * rng.standard_normal((k, 3))
    expected = np.fft.irfft(z, n=length, axis=0, norm="ortho")
    assert_close(inverse @ np.concatenate([z.real, z.imag]), expected, "float32_op")


@pytest.mark.parametrize("length", [1, 2, 9, 16, 31])
def test_run_time_length_builds_the_same_matrices(length):
    static = [keras.ops.convert_to_numpy(m) for m in dft.rdft_matrices(length)]
    as_tensor = keras.ops.convert_to_tensor(np.int32(length))
    dynamic = [keras.ops.convert_to_numpy(m) for m in dft.rdft_matrices(as_tensor)]
    for d, s in zip(dynamic, static, strict=True):
        assert_close(d, s)
    cos, sin = (keras.ops.convert_to_numpy(m) for m in dft._dft(as_tensor, "float32"))
    angle = 2 * np.pi * np.outer(np.arange(length), np.arange(length)) / length
    assert_close(cos, np.cos(angle))
    assert_close(sin, np.sin(angle))


def test_unknown_length_in_a_tf_graph(rng):
    if BACKEND != "tensorflow":
        pytest.skip("only TensorFlow graphs carry run-time sequence lengths")
    import tensorflow as tf

    fn = tf.function(
        _core_fn(dft, "modrelu"),
        input_signature=[
            tf.TensorSpec((None, None, 8)),
            tf.TensorSpec((None, 4, None)),
            tf.TensorSpec((None, 4, None)),
        ],
    )
    for length in (7, 12):
        args = _filter_inputs(rng, length)
        expected = R.spectral_core(*[a.astype(np.float64) for a in args], num_heads=4)
        assert_close(fn(*args), expected)


def test_auto_picks_by_length():
    crossover = dft.CROSSOVER[BACKEND]
    native = get_backend(BACKEND)
    assert spectral_core("fft", 4) is native
    assert spectral_core("dft", 10**6) is dft
    assert spectral_core("auto", crossover + 1) is native
    if crossover:
        assert spectral_core("auto", crossover) is dft
    assert spectral_core("auto", keras.ops.convert_to_tensor(8)) is native  # unknown length
    with pytest.raises(ValueError, match="fft_impl='fast'"):
        spectral_core("fast", 8)
