"""Framework-free reference implementation of the spectralmix math.

Every formula the Keras layers implement is written here once, against the Python Array API
standard through `array-api-compat`, so the same functions run on NumPy, PyTorch and JAX arrays.
It is the oracle of the test suite and a readable statement of the math for researchers who do
not use Keras. It imports no framework and no Keras; install its one dependency with
`pip install spectralmix[reference]`.

Shapes: `x` is `(batch, tokens, channels)` = `(B, N, D)`, `H` heads, `K = N // 2 + 1` bins.
Weights follow Keras's layouts: a dense kernel is `(in, out)`; attention kernels are
`(D, H, head_dim)` for query/key/value and `(H, head_dim, D)` for the output.

Reference: Fein-Ashley et al., "The FFT Strikes Back: An Efficient Alternative to
Self-Attention", arXiv:2502.18394 (v1). FNet: Lee-Thorp et al., arXiv:2105.03824. GFNet: Rao
et al., "Global Filter Networks for Image Classification", NeurIPS 2021, arXiv:2107.00645.
Hyena: Poli et al., "Hyena Hierarchy: Towards Larger Convolutional Language Models", ICML 2023,
arXiv:2302.10866; its bidirectional form: Fu et al. (M2-BERT), arXiv:2310.12109.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace

__all__ = [
    "adaptive_spectral_filter",
    "dense",
    "erf",
    "fftnet_block",
    "fourier_mixing",
    "gelu",
    "gelu_magnitude",
    "global_filter",
    "global_filter_2d",
    "hyena",
    "hyena_filter",
    "layer_norm",
    "long_convolution",
    "mod_relu",
    "multi_head_attention",
    "resample_spectrum",
    "resample_spectrum_circular",
    "spectral_core",
]

Array = Any


def erf(x: Array) -> Array:
    """Error function (Abramowitz & Stegun 7.1.26; absolute error below 1.5e-7).

    The Array API has no `erf`; this is accurate far beyond the float32 tolerances it serves.
    """
    xp = array_namespace(x)
    p = 0.3275911
    a1, a2, a3, a4, a5 = 0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429
    ax = xp.abs(x)
    t = 1.0 / (1.0 + p * ax)
    poly = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t
    return xp.sign(x) * (1.0 - poly * xp.exp(-ax * ax))


def gelu(x: Array) -> Array:
    """Exact (erf) GELU, as `keras.activations.gelu` and `torch.nn.GELU()` compute it."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _safe_magnitude(re: Array, im: Array) -> tuple[Array, Array]:
    """`(|z|, z != 0)` with no sqrt of zero, so gradients stay finite at the origin."""
    xp = array_namespace(re, im)
    sq = re * re + im * im
    nonzero = sq > 0
    mag = xp.sqrt(xp.where(nonzero, sq, xp.ones_like(sq)))
    return mag, nonzero


def _scale_by_magnitude(re: Array, im: Array, activated: Array, mag: Array, nonzero: Array):
    xp = array_namespace(re, im)
    scale = xp.where(nonzero, activated / mag, xp.zeros_like(mag))
    return re * scale, im * scale


def mod_relu(re: Array, im: Array, bias: Array, epsilon: float = 0.0) -> tuple[Array, Array]:
    """Complex modReLU: `ReLU(|z| + b) * z / max(|z|, epsilon)`.

    `epsilon = 0` is the exact form `ReLU(|z| + b) * z / |z|`, 0 where `z == 0`. `epsilon > 0`
    is the authors' v1 code (`clamp(|z|, min=1e-3)` in the denominator): the same map where
    `|z| >= epsilon`, and below it `z * ReLU(|z| + b) / epsilon`, continuous at
    `|z| = epsilon`, linear at the origin, with a Jacobian of norm at most `2 + max(b, 0) /
    epsilon` everywhere (the exact form's grows as `b / |z|` for `b > 0`).
    """
    xp = array_namespace(re, im)
    if epsilon < 0:
        raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon}")
    mag, nonzero = _safe_magnitude(re, im)
    if epsilon == 0:
        activated = xp.maximum(mag + bias, xp.zeros_like(mag))
        return _scale_by_magnitude(re, im, activated, mag, nonzero)
    mag = xp.where(nonzero, mag, xp.zeros_like(mag))
    activated = xp.maximum(mag + bias, xp.zeros_like(mag))
    scale = activated / xp.maximum(mag, xp.full_like(mag, epsilon))
    return re * scale, im * scale


def gelu_magnitude(re: Array, im: Array) -> tuple[Array, Array]:
    """The later FFTNet activation: `GELU(|z|) * z / |z|`, and 0 where `z == 0`."""
    mag, nonzero = _safe_magnitude(re, im)
    return _scale_by_magnitude(re, im, gelu(mag), mag, nonzero)


def resample_spectrum(values: Array, length: int, max_length: int) -> Array:
    """Resample per-bin values defined for `max_length` tokens to `length` tokens.

    Bin `k` of a length-`length` transform sits at normalised frequency `k / length`; it takes
    the linear interpolation of `values` (last axis, bins `j / max_length`) at that frequency,
    clamped to the last bin. Exact (the identity) when `length == max_length`.
    """
    xp = array_namespace(values)
    num_max_bins = max_length // 2 + 1
    if values.shape[-1] != num_max_bins:
        raise ValueError(
            f"`values` must have {num_max_bins} bins on its last axis for max_length="
            f"{max_length}. Received: shape={tuple(values.shape)}"
        )
    num_bins = length // 2 + 1
    index0, index1, weight = [], [], []
    for k in range(num_bins):
        lower, remainder = divmod(k * max_length, length)
        if lower >= num_max_bins - 1:
            index0.append(num_max_bins - 1)
            index1.append(num_max_bins - 1)
            weight.append(0.0)
        else:
            index0.append(lower)
            index1.append(lower + 1)
            weight.append(remainder / length)
    device = getattr(values, "device", None)
    i0 = xp.asarray(index0, device=device)
    i1 = xp.asarray(index1, device=device)
    w = xp.asarray(weight, dtype=values.dtype, device=device)
    axis = values.ndim - 1
    return xp.take(values, i0, axis=axis) * (1.0 - w) + xp.take(values, i1, axis=axis) * w


def spectral_core(
    x: Array,
    scale: Array,
    shift: Array,
    *,
    num_heads: int,
    activation: str = "modrelu",
    epsilon: float = 0.0,
) -> Array:
    """rfft (ortho, tokens) → per (head, bin) filter → complex activation → irfft.

    `scale` and `shift` are `(B or 1, H, K)`. `activation="modrelu"`: `Z = modReLU(F * scale)`
    with bias `shift` and `epsilon` (see `mod_relu`). `activation="gelu"`:
    `Z = GELU-magnitude(F * scale + shift)` (`epsilon` unused: `GELU(m) / m` is bounded).
    """
    xp = array_namespace(x)
    batch, length, channels = x.shape
    head_dim = channels // num_heads
    xh = xp.reshape(x, (batch, length, num_heads, head_dim))
    spectrum = xp.fft.rfft(xh, axis=1, norm="ortho")  # (B, K, H, d)
    # (B, H, K) -> (B, K, H, 1) so the filter broadcasts over the head's channels.
    scale = xp.permute_dims(scale, (0, 2, 1))[..., None]
    shift = xp.permute_dims(shift, (0, 2, 1))[..., None]
    re = xp.real(spectrum) * scale
    im = xp.imag(spectrum) * scale
    if activation == "modrelu":
        re, im = mod_relu(re, im, shift, epsilon)
    elif activation == "gelu":
        re, im = gelu_magnitude(re + shift, im)
    else:
        raise ValueError(f"Unknown activation: {activation!r}")
    mixed = xp.fft.irfft(re + 1j * im, n=length, axis=1, norm="ortho")
    return xp.reshape(mixed, (batch, length, channels))


def dense(x: Array, kernel: Array, bias: Array | None = None) -> Array:
    """`x @ kernel + bias` over the last axis."""
    xp = array_namespace(x, kernel)
    y = xp.matmul(x, kernel)
    return y if bias is None else y + bias


def _masked_mean_tokens(x: Array, mask: Array | None) -> Array:
    xp = array_namespace(x)
    if mask is None:
        return xp.mean(x, axis=1)
    m = xp.astype(mask, x.dtype)[..., None]
    count = xp.maximum(xp.sum(m, axis=1), xp.ones_like(xp.sum(m, axis=1)))
    return xp.sum(x * m, axis=1) / count


def adaptive_spectral_filter(
    x: Array,
    *,
    base_filter: Array,
    bias: Array,
    num_heads: int,
    max_sequence_length: int,
    context_kernel: Array | None = None,
    context_bias: Array | None = None,
    modulation_kernel: Array | None = None,
    modulation_bias: Array | None = None,
    variant: str = "v1",
    modrelu_epsilon: float = 1e-3,
    mask: Array | None = None,
) -> Array:
    """The FFTNet token mixer (no residual, no normalisation).

    v1 (the paper): `W = W_base + tanh(MLP(c))`, `Z = modReLU(rfft(x) * W; bias)`.
    v2 (the authors' later code): the MLP emits `(s, t)` per (head, bin),
    `Z = GELU-magnitude(rfft(x) * W_base * (1 + s) + bias + t)`.
    `c` is the (masked) mean token; the MLP is `Dense(D) → GELU → Dense(H·K_max[·2])`.
    Filter and bias are formed on `K_max` bins and resampled to the input's length.
    """
    xp = array_namespace(x)
    batch, length, _ = x.shape
    if mask is not None:
        x = x * xp.astype(mask, x.dtype)[..., None]
    num_max_bins = max_sequence_length // 2 + 1
    scale = base_filter[None, ...]
    shift = bias[None, ...]
    if context_kernel is not None:
        context = _masked_mean_tokens(x, mask)
        hidden = gelu(dense(context, context_kernel, context_bias))
        modulation = dense(hidden, modulation_kernel, modulation_bias)
        if variant == "v1":
            scale = scale + xp.tanh(xp.reshape(modulation, (batch, num_heads, num_max_bins)))
        else:
            modulation = xp.reshape(modulation, (batch, num_heads, num_max_bins, 2))
            scale = scale * (1.0 + modulation[..., 0])
            shift = shift + modulation[..., 1]
    scale = resample_spectrum(scale, length, max_sequence_length)
    shift = resample_spectrum(shift, length, max_sequence_length)
    activation = "modrelu" if variant == "v1" else "gelu"
    y = spectral_core(
        x, scale, shift, num_heads=num_heads, activation=activation, epsilon=modrelu_epsilon
    )
    if mask is not None:
        y = y * xp.astype(mask, y.dtype)[..., None]
    return y


def fourier_mixing(x: Array, mask: Array | None = None) -> Array:
    """FNet mixing: the real part of the 2-D DFT over tokens and channels (unnormalised)."""
    xp = array_namespace(x)
    if mask is not None:
        x = x * xp.astype(mask, x.dtype)[..., None]
    y = xp.real(xp.fft.fft(xp.fft.fft(x, axis=2), axis=1))
    if mask is not None:
        y = y * xp.astype(mask, y.dtype)[..., None]
    return y


def global_filter(
    x: Array,
    filter_real: Array,
    filter_imag: Array,
    *,
    max_sequence_length: int | None = None,
    mask: Array | None = None,
) -> Array:
    """GFNet's global filter over the tokens: `y = irfft(rfft(x) * W)`, orthonormal.

    `W = filter_real + i * filter_imag`, `(K_max, D)` with `K_max = max_sequence_length // 2 + 1`
    (default: the input's length), one complex value per (bin, channel); both parts are
    resampled to the input's `K` bins (`resample_spectrum`). Padded tokens are zeroed before the
    transform and padded outputs are zero.
    """
    xp = array_namespace(x)
    length = x.shape[1]
    max_length = max_sequence_length or length
    if mask is not None:
        x = x * xp.astype(mask, x.dtype)[..., None]
    w_re, w_im = (
        xp.permute_dims(resample_spectrum(xp.permute_dims(w, (1, 0)), length, max_length), (1, 0))
        for w in (filter_real, filter_imag)
    )
    spectrum = xp.fft.rfft(x, axis=1, norm="ortho")  # (B, K, D)
    y = xp.fft.irfft(spectrum * (w_re + 1j * w_im), n=length, axis=1, norm="ortho")
    if mask is not None:
        y = y * xp.astype(mask, y.dtype)[..., None]
    return y


def resample_spectrum_circular(values: Array, length: int, max_length: int) -> Array:
    """Resample per-bin values of a full (two-sided) `max_length`-point FFT to `length` points.

    Bin `m` of a length-`length` FFT sits at the signed frequency `f = m / length` for
    `m <= length / 2` and `(m - length) / length` above (the Nyquist bin of an even length at
    `+1/2`). It takes the linear interpolation of `values` (last axis) at `f`, with the bins
    read periodically in frequency, so negative frequencies interpolate between negative
    bins and `-1 / max_length` sits next to `0`. The identity when `length == max_length`.
    """
    xp = array_namespace(values)
    if values.shape[-1] != max_length:
        raise ValueError(
            f"`values` must have {max_length} bins on its last axis. "
            f"Received: shape={tuple(values.shape)}"
        )
    index0, index1, weight = [], [], []
    for m in range(length):
        signed = m if 2 * m <= length else m - length
        lower, remainder = divmod(signed * max_length, length)  # floor: remainder >= 0
        index0.append(lower % max_length)
        index1.append((lower + 1) % max_length)
        weight.append(remainder / length)
    device = getattr(values, "device", None)
    i0 = xp.asarray(index0, device=device)
    i1 = xp.asarray(index1, device=device)
    w = xp.asarray(weight, dtype=values.dtype, device=device)
    axis = values.ndim - 1
    return xp.take(values, i0, axis=axis) * (1.0 - w) + xp.take(values, i1, axis=axis) * w


def global_filter_2d(
    x: Array,
    filter_real: Array,
    filter_imag: Array,
    *,
    filter_grid: tuple[int, int],
    grid: tuple[int, int] | None = None,
    class_token: bool = False,
    mask: Array | None = None,
) -> Array:
    """GFNet's 2-D global filter over a patch grid: `y = irfft2(rfft2(x) * W)`, orthonormal.

    `x` is `(B, N, D)`: an optional class token first, then the `h * w` patches of `grid`
    (default `filter_grid`) in row-major order. `W = filter_real + i * filter_imag` is
    `(h0, w0 // 2 + 1, D)` for `filter_grid = (h0, w0)`; at another grid it is resampled:
    along the half-spectrum axis by `resample_spectrum`, along the two-sided axis by
    `resample_spectrum_circular`. The class token's output is the mean of the patches it is
    given (over the real patches under a mask), the filter's input. Padded tokens are zeroed
    before the transform and padded outputs are zero.
    """
    xp = array_namespace(x)
    batch, _, channels = x.shape
    height0, width0 = filter_grid
    height, width = grid or filter_grid
    if mask is not None:
        x = x * xp.astype(mask, x.dtype)[..., None]
    first = int(class_token)
    patches = xp.reshape(x[:, first:], (batch, height, width, channels))
    parts = []
    for w in (filter_real, filter_imag):
        w = xp.permute_dims(w, (2, 0, 1))  # (D, h0, K0)
        w = resample_spectrum(w, width, width0)  # (D, h0, K)
        w = resample_spectrum_circular(xp.permute_dims(w, (0, 2, 1)), height, height0)
        parts.append(xp.permute_dims(w, (2, 1, 0)))  # (h, K, D)
    spectrum = xp.fft.rfftn(patches, axes=(1, 2), norm="ortho")  # (B, h, K, D)
    filtered = spectrum * (parts[0] + 1j * parts[1])
    y = xp.fft.irfftn(filtered, s=(height, width), axes=(1, 2), norm="ortho")
    y = xp.reshape(y, (batch, height * width, channels))
    if class_token:
        patch_mask = None if mask is None else mask[:, first:]
        pooled = _masked_mean_tokens(x[:, first:], patch_mask)
        y = xp.concat([pooled[:, None, :], y], axis=1)
    if mask is not None:
        y = y * xp.astype(mask, y.dtype)[..., None]
    return y


def layer_norm(x: Array, gamma: Array, beta: Array, epsilon: float) -> Array:
    """Layer normalisation over the last axis (biased variance, as Keras and PyTorch)."""
    xp = array_namespace(x)
    mean = xp.mean(x, axis=-1, keepdims=True)
    var = xp.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) / xp.sqrt(var + epsilon) * gamma + beta


def multi_head_attention(
    x: Array,
    weights: dict[str, Array],
    *,
    num_heads: int,
    mask: Array | None = None,
    causal: bool = False,
) -> Array:
    """Scaled dot-product self-attention with Keras `MultiHeadAttention`'s weight layout;
    `causal`: token `t` attends to tokens `<= t` only."""
    xp = array_namespace(x)

    def project(name: str) -> Array:  # (B, N, D) x (D, H, d) -> (B, H, N, d)
        kernel = weights[f"{name}_kernel"]
        dim, heads, head_dim = kernel.shape
        y = xp.matmul(x, xp.reshape(kernel, (dim, heads * head_dim))) + xp.reshape(
            weights[f"{name}_bias"], (heads * head_dim,)
        )
        y = xp.reshape(y, (x.shape[0], x.shape[1], heads, head_dim))
        return xp.permute_dims(y, (0, 2, 1, 3))

    q, k, v = project("query"), project("key"), project("value")
    head_dim = q.shape[-1]
    scores = xp.matmul(q, xp.permute_dims(k, (0, 1, 3, 2))) / math.sqrt(head_dim)
    if mask is not None:
        keep = xp.astype(mask, xp.bool)[:, None, None, :]
        scores = xp.where(keep, scores, xp.full_like(scores, -1e9))
    if causal:
        n = x.shape[1]
        positions = xp.arange(n)
        earlier = positions[None, :] <= positions[:, None]  # (query, key)
        scores = xp.where(earlier[None, None], scores, xp.full_like(scores, -1e9))
    scores = scores - xp.max(scores, axis=-1, keepdims=True)
    probs = xp.exp(scores)
    probs = probs / xp.sum(probs, axis=-1, keepdims=True)
    context = xp.permute_dims(xp.matmul(probs, v), (0, 2, 1, 3))  # (B, N, H, d)
    out_kernel = weights["output_kernel"]
    heads, head_dim, dim = out_kernel.shape
    context = xp.reshape(context, (x.shape[0], x.shape[1], heads * head_dim))
    return (
        xp.matmul(context, xp.reshape(out_kernel, (heads * head_dim, dim))) + weights["output_bias"]
    )


def fftnet_block(
    x: Array,
    params: dict[str, Any],
    *,
    num_heads: int,
    token_mixer: str = "fftnet",
    variant: str = "v1",
    max_sequence_length: int | None = None,
    epsilon: float = 1e-5,
    modrelu_epsilon: float = 1e-3,
    mask: Array | None = None,
) -> Array:
    """One FFTNet block at inference (dropout and drop path off).

    v1 (post-norm, the paper): `h = LN1(x + mixer(x))`, `out = h + MLP(LN2(h))`.
    v2 (pre-norm): `h = x + mixer(LN1(x))`, `out = h + MLP(LN2(h))`.
    `params` holds `norm1`, `norm2` (gamma, beta), `mlp` (two dense (kernel, bias) pairs) and
    `mixer` (keyword weights of the chosen mixer). Padded outputs are zero.
    """
    xp = array_namespace(x)

    def mix(inputs: Array) -> Array:
        if token_mixer == "fftnet":
            return adaptive_spectral_filter(
                inputs,
                num_heads=num_heads,
                max_sequence_length=max_sequence_length or inputs.shape[1],
                variant=variant,
                modrelu_epsilon=modrelu_epsilon,
                mask=mask,
                **params["mixer"],
            )
        if token_mixer == "fnet":
            return fourier_mixing(inputs, mask=mask)
        return multi_head_attention(inputs, params["mixer"], num_heads=num_heads, mask=mask)

    def mlp(inputs: Array) -> Array:
        (k1, b1), (k2, b2) = params["mlp"]
        return dense(gelu(dense(inputs, k1, b1)), k2, b2)

    if mask is not None:
        x = x * xp.astype(mask, x.dtype)[..., None]
    if variant == "v1":
        h = layer_norm(x + mix(x), *params["norm1"], epsilon)
    else:
        h = x + mix(layer_norm(x, *params["norm1"], epsilon))
    out = h + mlp(layer_norm(h, *params["norm2"], epsilon))
    if mask is not None:
        out = out * xp.astype(mask, out.dtype)[..., None]
    return out


def hyena_filter(
    length: int,
    weights: dict[str, Any],
    *,
    max_sequence_length: int,
    modulate: bool = True,
    fast_decay_pct: float = 0.3,
    slow_decay_pct: float = 1.5,
    target: float = 1e-2,
    shift: float = 0.0,
    normalized: bool = False,
) -> Array:
    """Hyena's implicit filter at the positions `n = 0 … length - 1`, shape `(length, C)`.

    Features of `n` (`B` bands, `emb_dim = 1 + 2B` read from the first kernel), with
    `N_max = max_sequence_length`: `t = n / (N_max - 1)`, `ω = 2π n / N_max`,
    `f_b = linspace(1e-4, B - 1, B)`, `z = [t, cos(f_b ω)…, -sin(f_b ω)…]`. Then
    `a = sin(w · (z K_0 + b_0))`, `a = sin(w · (a K_i + b_i))` for the inner layers (one
    frequency vector `w` for all), `h = a K_out`; the window
    `h_c · (exp(-t |δ_c|) + shift)` with `δ = linspace(ln(target) / slow_decay_pct,
    ln(target) / fast_decay_pct, C)`; `normalized`: `h / sum_c |h_c|` per position.

    `weights`: `sine_frequency` `(F,)`, `kernels` and `biases` (the FFN's hidden layers, in
    order), `output_kernel` `(F, C)`.
    """
    kernels = weights["kernels"]
    xp = array_namespace(kernels[0])
    dtype, device = kernels[0].dtype, getattr(kernels[0], "device", None)
    bands = (kernels[0].shape[0] - 1) // 2
    n = xp.arange(length, dtype=dtype, device=device)[:, None]
    t = n / max(max_sequence_length - 1, 1)
    omega = 2.0 * math.pi * n / max_sequence_length
    frequencies = xp.linspace(1e-4, bands - 1, bands, dtype=dtype, device=device)[None, :]
    z = xp.concat([t, xp.cos(frequencies * omega), -xp.sin(frequencies * omega)], axis=1)
    a = z
    for kernel, bias in zip(kernels, weights["biases"], strict=True):
        a = xp.sin(weights["sine_frequency"] * dense(a, kernel, bias))
    h = dense(a, weights["output_kernel"])
    channels = h.shape[1]
    if modulate:
        rates = xp.linspace(
            math.log(target) / slow_decay_pct,
            math.log(target) / fast_decay_pct,
            channels,
            dtype=dtype,
            device=device,
        )
        h = h * (xp.exp(-t * xp.abs(rates)[None, :]) + shift)
    if normalized:
        h = h / xp.sum(xp.abs(h), axis=1, keepdims=True)
    return h


def long_convolution(u: Array, h: Array, reverse: Array | None = None) -> Array:
    """The linear (not circular) long convolution, as the explicit O(N²) sum over tokens:

    `y_t = sum_{s ≤ t} h_{t-s} u_s`, plus `sum_{s > t} reverse_{s-t-1} u_s` when `reverse`
    is given (the bidirectional form of M2-BERT). `u` is `(B, N, C)`, `h` and `reverse`
    `(N, C)`, one filter per channel.
    """
    xp = array_namespace(u, h)
    length = u.shape[1]
    positions = xp.arange(length)
    lag = positions[:, None] - positions[None, :]  # (t, s) -> t - s

    def toeplitz(filter_values: Array, lags: Array) -> Array:  # (t, s, C), 0 where lags < 0
        valid = lags >= 0
        index = xp.reshape(xp.where(valid, lags, xp.zeros_like(lags)), (-1,))
        taps = xp.reshape(xp.take(filter_values, index, axis=0), (length, length, -1))
        return taps * xp.astype(valid, taps.dtype)[..., None]

    matrix = toeplitz(h, lag)
    if reverse is not None:
        matrix = matrix + toeplitz(reverse, -lag - 1)
    return xp.sum(matrix[None, ...] * u[:, None, ...], axis=2)


def hyena(
    x: Array,
    weights: dict[str, Any],
    *,
    order: int = 2,
    max_sequence_length: int,
    causal: bool = True,
    mask: Array | None = None,
    **filter_options: Any,
) -> Array:
    """The Hyena operator (Poli et al. 2023), the authors' order-`o` form.

    `p = x K_in + b_in` `(B, N, (o+1)·D)`, column `c·(o+1) + j` stream `j` of channel `c`;
    a short causal depthwise convolution per column, `q_t = b + sum_j W_j p_{t-k+1+j}`
    (`W` `(k, (o+1)·D)`, zeros before the start); streams `x_0 … x_{o-1}` (gates) and `v`
    (`j = o`); `z = v`, for `i = 1 … o-1`: `u = x_{o-i} ⊙ z`,
    `z = long_convolution(u, h_i) + d_i ⊙ u`; `y = (x_0 ⊙ z) K_out + b_out`.
    `h_i`: column `c·(o-1) + i - 1` of `hyena_filter` with `weights["filter"]` (and of
    `weights["reverse_filter"]` for the later tokens when `causal=False`); `d` the same layout
    (`weights["skip"]`). With a mask: `p` and each `u` are zero at padded tokens, and so are
    the outputs. `filter_options` are `hyena_filter`'s.
    """
    xp = array_namespace(x)
    batch, length, channels = x.shape
    streams = order + 1
    p = dense(x, weights["in_kernel"], weights["in_bias"])
    keep = None if mask is None else xp.astype(mask, x.dtype)[..., None]
    if keep is not None:
        p = p * keep
    short_kernel = weights["short_kernel"]
    taps = short_kernel.shape[0]
    q = xp.zeros_like(p) + weights["short_bias"]
    for j in range(taps):
        delay = taps - 1 - j  # tap j reads the token `delay` positions back
        if delay >= length:
            continue
        shifted = xp.concat([xp.zeros_like(p[:, :delay]), p[:, : length - delay]], axis=1)
        q = q + short_kernel[j] * shifted
    q = xp.reshape(q, (batch, length, channels, streams))
    gates = [q[..., j] for j in range(order)]
    value = q[..., order]

    def filters(name: str) -> Array:
        h = hyena_filter(
            length, weights[name], max_sequence_length=max_sequence_length, **filter_options
        )
        return xp.reshape(h, (length, channels, order - 1))

    forward = filters("filter")
    reverse = None if causal else filters("reverse_filter")
    skip = xp.reshape(weights["skip"], (channels, order - 1))
    z = value
    for i in range(order - 1):
        u = gates[order - 1 - i] * z
        if keep is not None:
            u = u * keep
        z = (
            long_convolution(u, forward[..., i], None if reverse is None else reverse[..., i])
            + skip[:, i] * u
        )
    y = dense(gates[0] * z, weights["out_kernel"], weights["out_bias"])
    return y if keep is None else y * keep
