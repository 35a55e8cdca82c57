"""PyTorch: the parts of the spectral core that measured faster and leaner than `keras_ops`.

Everything else — the layout, the GELU form, and the modReLU form under `torch.compile` (the
compiler fuses the elementwise formula itself; `fullgraph=True` traces it) — is the
`keras.ops` core (`spectralmix.backends.keras_ops`, math in `spectralmix.ops.filter_spectrum`).
What stays here, each measured paired against `keras_ops` in one process
(`benchmarks/bench_shims.py`, `docs/benchmarks.md`, "The spectral core decision"):

- the eager modReLU filter as one autograd function, `_ModReLUFilter`, with a hand-written
  backward, on `torch.fft` FFTs along the tokens with `norm="ortho"`. Eager torch runs every
  elementwise op as a separate kernel with its own output tensor, and on CPU each output above
  glibc's mmap threshold (32 MB: a float32 spectrum of batch 8, 256 channels and 4,096 tokens
  is 34 MB) is fresh, page-faulted memory. The function keeps the spectrum for the backward and
  makes a handful of full-size buffers where autograd of the elementwise formula makes dozens;
- FNet's transform, `torch.fft.fft2` of the real input (`keras.ops.fft2` takes a complex pair:
  it allocates and transforms a zero imaginary part).
"""

from __future__ import annotations

import functools

import torch

from spectralmix.backends import keras_ops

name = "torch"


class _ModReLUFilter(torch.autograd.Function):
    """`Z = modReLU(G; b, ε)` of `G = W · S`, for a complex spectrum `S` and real `W`, `b`
    broadcast to it: `Z = φ(m) · G` with `m = |G| = |W||S|` and
    `φ(m) = relu(m + b) / max(m, ε)`; for `ε = 0`, `φ = 0` where `m = 0`.

    Backward, with `ρ = Re(conj(S) · dZ)` where `relu` is on (0 elsewhere) and `φ'` the
    derivative of `φ` (`−b / m²` where `m ≥ ε`, `1 / ε` below):

    - `dS = W φ · dZ + c · S` with `c = φ' W |W| ρ / |S| = φ' W³ ρ / m`,
    - `dW = Σ ρ (φ + φ' m)`: `Σ ρ` where `m ≥ ε`, `Σ ρ (2m + b) / ε` below,
    - `db = Σ W ρ / max(m, ε)`,

    the sums over the axes `W` and `b` were broadcast along (`tests/backends/test_torch.py`
    compares all three with autograd of the `keras_ops` core). The spectrum is kept for the
    backward rather than overwritten by `Z`: where `W = 0` (so `Z = 0`) and `ε > 0`,
    `dW = φ(0) Σ Re(conj(S) · dZ)` still needs `S`.
    """

    @staticmethod
    def forward(ctx, spectrum, scale, shift, epsilon):
        s = torch.view_as_real(spectrum)
        magnitude = s[..., 0].square().addcmul_(s[..., 1], s[..., 1]).sqrt_()
        magnitude.mul_(scale.abs())  # m = |G|
        if epsilon > 0:
            inverse = magnitude.clamp(min=epsilon).reciprocal_()
        else:
            inverse = magnitude.reciprocal().masked_fill_(magnitude == 0, 0.0)
        factor = torch.add(magnitude, shift).relu_().mul_(inverse).mul_(scale)  # W φ
        ctx.save_for_backward(spectrum, scale, shift, magnitude, factor)
        ctx.epsilon = epsilon
        return torch.view_as_complex(s * factor.unsqueeze(-1))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        spectrum, scale, shift, magnitude, factor = ctx.saved_tensors
        epsilon = ctx.epsilon
        s, g = torch.view_as_real(spectrum), torch.view_as_real(grad.resolve_conj())
        on = torch.gt(magnitude, -shift)
        if epsilon == 0:
            on &= magnitude > 0
        rho = (s[..., 0] * g[..., 0]).addcmul_(s[..., 1], g[..., 1]).mul_(on)
        if epsilon > 0:
            inverse = magnitude.clamp(min=epsilon).reciprocal_()
        else:
            inverse = magnitude.reciprocal().masked_fill_(magnitude == 0, 0.0)
        rho_scale = rho * scale
        grad_shift = (rho_scale * inverse).sum_to_size(shift.shape)
        # where m >= ε: c = −b W² (ρW) / m³
        coefficient = inverse.square().mul_(inverse).mul_(rho_scale).mul_(-shift * scale.square())
        if epsilon > 0:
            # Below ε (rare: a few coefficients in millions at ε = 1e-3), patched in place:
            # c = W² (ρW) / (ε m), 0 where m = 0 (there S = 0 or W = 0), and dW gets
            # ρ (2m + b) / ε instead of ρ.
            below = torch.nonzero(magnitude < epsilon, as_tuple=True)
            m, w = magnitude[below], scale.expand_as(magnitude)[below]
            r = rho[below]
            c = (w * w * w * r / (epsilon * m)).masked_fill_(m == 0, 0.0)
            coefficient.index_put_(below, c)
            rho.index_put_(below, r * (2 * m + shift.expand_as(magnitude)[below]) / epsilon)
        grad_scale = rho.sum_to_size(scale.shape)
        grad_spectrum = (g * factor.unsqueeze(-1)).addcmul_(s, coefficient.unsqueeze(-1))
        return torch.view_as_complex(grad_spectrum), grad_scale, grad_shift, None


def _fused_modrelu(xt, scale, shift, length, *, epsilon: float):
    """`keras_ops.Mix` of the eager modReLU form: `torch.fft` FFTs and `_ModReLUFilter`."""
    spectrum = torch.fft.rfft(xt, dim=-1, norm="ortho")  # (B, H, d, K)
    filtered = _ModReLUFilter.apply(spectrum, scale, shift, epsilon)
    return torch.fft.irfft(filtered, n=length, dim=-1, norm="ortho")


def spectral_filter(
    x, scale, shift, *, num_heads: int, activation: str = "modrelu", epsilon: float = 0.0
):
    """`SpectralBackend.spectral_filter` (see `spectralmix.backends`)."""
    if activation != "modrelu" or torch.compiler.is_compiling():
        return keras_ops.spectral_filter(
            x, scale, shift, num_heads=num_heads, activation=activation, epsilon=epsilon
        )
    mix = functools.partial(_fused_modrelu, epsilon=epsilon)
    return keras_ops.filter_per_head(x, scale, shift, num_heads, mix)


def fourier_mixing(x):
    """`SpectralBackend.fourier_mixing`."""
    return torch.fft.fft2(x, dim=(1, 2)).real
