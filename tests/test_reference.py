"""The Array API oracle against independent float64 references (scipy.fft, hand-computed values)
and on every array library installed (NumPy, PyTorch, JAX)."""

import importlib.util

import numpy as np
import pytest
import scipy.fft
import scipy.special

from spectralmix import reference as R
from tests.tolerances import TOLERANCES

FLOAT64 = TOLERANCES["float64"]


def test_erf_matches_scipy():
    x = np.linspace(-6, 6, 4001)
    np.testing.assert_allclose(R.erf(x), scipy.special.erf(x), rtol=0, atol=TOLERANCES["erf"])


def test_gelu_is_exact_erf_form():
    x = np.linspace(-5, 5, 101)
    expected = 0.5 * x * (1 + scipy.special.erf(x / np.sqrt(2)))
    np.testing.assert_allclose(R.gelu(x), expected, rtol=0, atol=TOLERANCES["erf"] * 5)


def test_mod_relu_hand_values():
    re, im = R.mod_relu(
        np.array([3.0, 0.0, 3.0]), np.array([4.0, 0.0, 4.0]), np.array([-1.0, 1.0, -6.0])
    )
    # |3+4i| = 5: ReLU(5 - 1) = 4 -> (3, 4) * 4/5; z = 0 -> 0; ReLU(5 - 6) = 0 -> 0.
    np.testing.assert_allclose(re, [2.4, 0.0, 0.0], atol=FLOAT64)
    np.testing.assert_allclose(im, [3.2, 0.0, 0.0], atol=FLOAT64)


def test_mod_relu_epsilon_hand_values():
    # epsilon = 1: |0.5| < 1 -> 0.5 * ReLU(0.5 + 0.2) / 1 = 0.35 (exact form: 0.7);
    # |3+4i| = 5 >= 1 -> as the exact form, (3, 4) * 4/5; z = 0 -> 0 for any bias.
    re, im = R.mod_relu(
        np.array([0.5, 3.0, 0.0]), np.array([0.0, 4.0, 0.0]), np.array([0.2, -1.0, 0.7]), 1.0
    )
    np.testing.assert_allclose(re, [0.35, 2.4, 0.0], atol=FLOAT64)
    np.testing.assert_allclose(im, [0.0, 3.2, 0.0], atol=FLOAT64)
    exact_re, _ = R.mod_relu(np.array([0.5]), np.array([0.0]), np.array([0.2]))
    np.testing.assert_allclose(exact_re, [0.7], atol=FLOAT64)
    with pytest.raises(ValueError, match="epsilon=-0.1"):
        R.mod_relu(np.ones(1), np.ones(1), np.ones(1), -0.1)


def test_mod_relu_epsilon_is_continuous_at_the_floor():
    # Just below and above |z| = epsilon the clamped form changes by O(step), not by a jump.
    epsilon, bias, step = 1e-3, 0.5, 1e-12
    mags = np.array([epsilon - step, epsilon, epsilon + step])
    re, _ = R.mod_relu(mags, np.zeros(3), np.full(3, bias), epsilon)
    np.testing.assert_allclose(re, epsilon + bias, atol=1e-8)


def test_gelu_magnitude_keeps_phase():
    re, im = R.gelu_magnitude(np.array([3.0, 0.0]), np.array([4.0, 0.0]))
    g5 = 0.5 * 5 * (1 + scipy.special.erf(5 / np.sqrt(2)))
    np.testing.assert_allclose(re, [3 * g5 / 5, 0.0], atol=TOLERANCES["erf"] * 10)
    np.testing.assert_allclose(im, [4 * g5 / 5, 0.0], atol=TOLERANCES["erf"] * 10)


def test_resample_hand_values():
    values = np.array([[0.0, 10.0, 20.0, 30.0, 40.0]])  # 5 bins of max_length 8
    np.testing.assert_array_equal(R.resample_spectrum(values, 8, 8), values)
    # length 4: bins at frequencies 0, 1/4, 2/4 -> positions 0, 2, 4.
    np.testing.assert_allclose(R.resample_spectrum(values, 4, 8), [[0.0, 20.0, 40.0]])
    # length 16: positions k/2 -> linear interpolation between neighbours.
    np.testing.assert_allclose(
        R.resample_spectrum(values, 16, 8), [[0, 5, 10, 15, 20, 25, 30, 35, 40]]
    )
    # length 7 (odd): positions 8k/7 = 0, 8/7, 16/7, 24/7.
    np.testing.assert_allclose(
        R.resample_spectrum(values, 7, 8), [[0.0, 80 / 7, 160 / 7, 240 / 7]], atol=FLOAT64
    )
    # max_length 7 has 4 bins, the last at 3/7 < 1/2: longer inputs clamp to it.
    np.testing.assert_allclose(R.resample_spectrum(np.array([0.0, 1, 2, 3]), 8, 7)[-1], 3.0)


def test_resample_rejects_wrong_bin_count():
    with pytest.raises(ValueError, match="bins"):
        R.resample_spectrum(np.zeros((2, 4)), 8, 8)


def _scipy_core(x, scale, shift, num_heads):
    """Per-head loop with scipy.fft and explicit complex arithmetic (modReLU)."""
    _b, n, d = x.shape
    hd = d // num_heads
    out = np.zeros_like(x)
    for h in range(num_heads):
        spectrum = scipy.fft.rfft(x[:, :, h * hd : (h + 1) * hd], axis=1, norm="ortho")
        g = spectrum * scale[:, h, :, None]
        mag = np.abs(g)
        factor = np.divide(
            np.maximum(mag + shift[:, h, :, None], 0), mag, out=np.zeros_like(mag), where=mag > 0
        )
        out[:, :, h * hd : (h + 1) * hd] = scipy.fft.irfft(g * factor, n=n, axis=1, norm="ortho")
    return out


@pytest.mark.parametrize("length", [8, 9])
def test_spectral_core_matches_scipy(rng, length):
    x = rng.standard_normal((2, length, 6))
    k = length // 2 + 1
    scale, shift = rng.standard_normal((2, 3, k)), rng.standard_normal((1, 3, k))
    np.testing.assert_allclose(
        R.spectral_core(x, scale, shift, num_heads=3),
        _scipy_core(x, scale, shift, 3),
        atol=FLOAT64,
        rtol=FLOAT64,
    )


def test_unit_filter_and_zero_bias_is_identity(rng):
    x = rng.standard_normal((2, 10, 4))
    ones = np.ones((1, 2, 6))
    np.testing.assert_allclose(R.spectral_core(x, ones, 0 * ones, num_heads=2), x, atol=FLOAT64)


def test_fourier_mixing_matches_scipy(rng):
    x = rng.standard_normal((2, 7, 5))
    np.testing.assert_allclose(
        R.fourier_mixing(x), scipy.fft.fft2(x, axes=(1, 2)).real, atol=FLOAT64
    )


def test_layer_norm_and_attention_hand_checks(rng):
    x = rng.standard_normal((1, 3, 4))
    y = R.layer_norm(x, np.ones(4), np.zeros(4), 0.0)
    np.testing.assert_allclose(y.mean(-1), 0, atol=FLOAT64)
    np.testing.assert_allclose(y.std(-1), 1, atol=FLOAT64)
    # Identity projections, one head: attention = softmax(x x^T / 2) x.
    eye = np.eye(4)[:, None, :]
    weights = {f"{n}_kernel": eye for n in ("query", "key", "value")}
    weights |= {f"{n}_bias": np.zeros((1, 4)) for n in ("query", "key", "value")}
    weights |= {"output_kernel": np.eye(4)[None], "output_bias": np.zeros(4)}
    expected = scipy.special.softmax(x[0] @ x[0].T / 2, axis=-1) @ x[0]
    np.testing.assert_allclose(
        R.multi_head_attention(x, weights, num_heads=1)[0], expected, atol=FLOAT64
    )
    masked = R.multi_head_attention(x, weights, num_heads=1, mask=np.array([[1, 1, 0]]))
    expected = scipy.special.softmax(x[0] @ x[0, :2].T / 2, axis=-1) @ x[0, :2]
    np.testing.assert_allclose(masked[0], expected, atol=FLOAT64)


def _filter_args(rng, d=6, heads=3, n_max=8, variant="v1"):
    k = n_max // 2 + 1
    per_bin = 1 if variant == "v1" else 2
    return dict(
        base_filter=1 + 0.1 * rng.standard_normal((heads, k)),
        bias=-0.1 + 0.1 * rng.standard_normal((heads, k)),
        context_kernel=rng.standard_normal((d, d)) / np.sqrt(d),
        context_bias=0.1 * rng.standard_normal(d),
        modulation_kernel=rng.standard_normal((d, heads * k * per_bin)) / np.sqrt(d),
        modulation_bias=0.1 * rng.standard_normal(heads * k * per_bin),
        num_heads=heads,
        max_sequence_length=n_max,
        variant=variant,
    )


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_padded_content_never_changes_real_outputs(rng, variant):
    x = rng.standard_normal((2, 8, 6))
    mask = np.ones((2, 8), bool)
    mask[0, 5:] = False
    noisy = x.copy()
    noisy[0, 5:] = 100 * rng.standard_normal((3, 6))
    args = _filter_args(rng, variant=variant)
    y = R.adaptive_spectral_filter(x, mask=mask, **args)
    np.testing.assert_allclose(R.adaptive_spectral_filter(noisy, mask=mask, **args), y)
    np.testing.assert_array_equal(y[0, 5:], 0)


LIBRARIES = ["numpy"] + [m for m in ("torch", "jax") if importlib.util.find_spec(m)]


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_oracle_runs_on_every_array_library(rng, library, variant):
    x = rng.standard_normal((2, 10, 6))
    mask = np.ones((2, 10), bool)
    mask[1, 7:] = False
    args = _filter_args(rng, variant=variant)
    expected = R.adaptive_spectral_filter(x, mask=mask, **args)
    if library == "numpy":
        convert, back = np.asarray, np.asarray
    elif library == "torch":
        import torch

        convert, back = torch.asarray, lambda t: t.numpy()
    else:
        import jax.numpy as jnp

        convert, back = jnp.asarray, np.asarray
    tensors = {k: convert(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}
    # JAX runs in float32 unless x64 is enabled; the other libraries keep float64.
    tol = TOLERANCES["float32_op"] if library == "jax" else FLOAT64
    actual = back(R.adaptive_spectral_filter(convert(x), mask=convert(mask), **tensors))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)
