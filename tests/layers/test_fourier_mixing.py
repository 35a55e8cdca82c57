import keras
import numpy as np
import pytest

from spectralmix import reference as R
from spectralmix.layers import FourierMixing
from tests.helpers import (
    BACKEND,
    assert_close,
    finite_difference_grads,
    run_layer_test,
    to_numpy,
    value_and_grads,
)


@pytest.mark.parametrize("shape", [(2, 8, 6), (1, 13, 5)])
def test_matches_oracle(rng, shape):
    x = rng.standard_normal(shape).astype("float32")
    assert_close(FourierMixing()(x), R.fourier_mixing(x.astype(np.float64)), scale=True)


def test_hand_computed_constant_input():
    y = to_numpy(FourierMixing()(np.ones((1, 4, 2), "float32")))
    expected = np.zeros((1, 4, 2))
    expected[0, 0, 0] = 8.0  # all energy in the (0, 0) bin: N * D
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_gradient_matches_finite_differences(rng):
    x = rng.standard_normal((2, 5, 3))
    cotangent = rng.standard_normal((2, 5, 3))
    expected = finite_difference_grads(R.fourier_mixing, [x], cotangent)[0]
    _, gx, gw = value_and_grads(FourierMixing(), x, cotangent)
    assert gw == []
    assert_close(gx, expected, "float32_grad", scale=True)


def test_mask(rng):
    x = rng.standard_normal((2, 6, 4)).astype("float32")
    mask = np.array([[1] * 6, [1, 1, 1, 0, 0, 0]], bool)
    noisy = x.copy()
    noisy[~mask] = 50.0
    y = to_numpy(FourierMixing()(x, mask=mask))
    np.testing.assert_array_equal(to_numpy(FourierMixing()(noisy, mask=mask)), y)
    assert_close(y, R.fourier_mixing(x.astype(np.float64), mask=mask), scale=True)


def test_layer_contract(tmp_path):
    run_layer_test(lambda **kw: FourierMixing(**kw), (8, 4), tmp_path, expected_trainable=0)


def test_compiled(rng):
    x = rng.standard_normal((2, 8, 4)).astype("float32")
    layer = FourierMixing()
    eager = to_numpy(layer(x))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(layer, jit_compile=True)(x)
    elif BACKEND == "jax":
        import jax

        compiled = jax.jit(lambda xx: layer.stateless_call([], [], xx)[0])(x)
    else:
        import torch

        torch._dynamo.reset()
        compiled = torch.compile(layer)(torch.as_tensor(x)).detach()
    assert_close(compiled, eager, scale=True)


def test_bad_inputs():
    with pytest.raises(ValueError, match="rank 3"):
        FourierMixing()(np.ones((2, 3, 4, 5), "float32"))
    with pytest.raises(ValueError, match="int32"):
        FourierMixing()(np.ones((1, 4, 4), "int32"))
    with pytest.raises(ValueError, match="channels"):
        FourierMixing()(keras.Input((4, None)))


@pytest.mark.parametrize("shape", [(2, 8, 6), (1, 13, 5)])
def test_dft_equals_fft_and_oracle(rng, shape):
    x = rng.standard_normal(shape)
    cotangent = rng.standard_normal(shape)
    mask = np.ones(shape[:2], bool)
    mask[0, shape[1] // 2 :] = False
    layer = FourierMixing(fft_impl="dft")
    assert FourierMixing.from_config(layer.get_config()).fft_impl == "dft"
    y, gx, _ = value_and_grads(layer, x, cotangent, mask=mask)
    y_fft, gx_fft, _ = value_and_grads(FourierMixing(), x, cotangent, mask=mask)
    assert_close(y, y_fft, scale=True)
    assert_close(y, R.fourier_mixing(x, mask=mask), scale=True)
    assert_close(gx, gx_fft, "float32_grad", scale=True)


def test_bad_fft_impl():
    with pytest.raises(ValueError, match="fft_impl='rfft'"):
        FourierMixing(fft_impl="rfft")
