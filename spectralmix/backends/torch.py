"""PyTorch spectral core: `torch.fft` FFTs, elementwise work on real views.

Tokens are moved to the last, contiguous axis before the FFT. The filter and modReLU run on
`view_as_real` views of the spectrum, not on complex arithmetic, which measured faster on CPU
(`benchmarks/bench_shims.py`, docs/backends.md).

The modReLU filter (the paper's form, `activation="modrelu"`) is one autograd function,
`_ModReLUFilter`, with a hand-written backward: eager torch runs every elementwise op as a
separate kernel with its own output tensor, and on CPU each output above glibc's mmap
threshold (32 MB: a float32 spectrum of batch 8, 256 channels and 4,096 tokens is 34 MB) is
fresh, page-faulted memory. The function keeps the spectrum for the backward and makes a handful
of full-size buffers where autograd of the elementwise formula made about 25. Under
`torch.compile` (the compiler fuses the elementwise formula itself) and for the GELU form, the
same math runs as elementwise ops; `fullgraph=True` traces it without graph breaks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
    compares all three with autograd of `_filter_elementwise`). The spectrum is kept for the
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


def _filter_elementwise(spectrum, scale, shift, activation, epsilon=0.0):
    """The filter and activation as elementwise autograd ops: what `torch.compile` fuses (into
    fewer kernels than `_ModReLUFilter`'s hand-written ones), and the GELU form."""
    re = spectrum.real * scale
    im = spectrum.imag * scale
    if activation == "gelu":
        re = re + shift
    sq = re * re + im * im
    nonzero = sq > 0
    # sqrt and the division only ever see nonzero values: finite gradients at z = 0.
    mag = torch.sqrt(torch.where(nonzero, sq, torch.ones_like(sq)))
    if activation == "gelu":
        factor = torch.where(nonzero, F.gelu(mag) / mag, torch.zeros_like(mag))
    elif epsilon == 0:
        factor = torch.where(nonzero, torch.relu(mag + shift) / mag, torch.zeros_like(mag))
    else:
        mag = torch.where(nonzero, mag, torch.zeros_like(mag))
        factor = torch.relu(mag + shift) / torch.clamp(mag, min=epsilon)
    return torch.complex(re * factor, im * factor)


def spectral_filter(
    x, scale, shift, *, num_heads: int, activation: str = "modrelu", epsilon: float = 0.0
):
    batch, length, channels = x.shape
    xt = x.transpose(1, 2).reshape(batch, num_heads, channels // num_heads, length)
    spectrum = torch.fft.rfft(xt, dim=-1, norm="ortho")  # (B, H, d, K)
    scale = scale[:, :, None, :]
    shift = shift[:, :, None, :]
    if activation == "modrelu" and not torch.compiler.is_compiling():
        filtered = _ModReLUFilter.apply(spectrum, scale, shift, epsilon)
    else:
        filtered = _filter_elementwise(spectrum, scale, shift, activation, epsilon)
    mixed = torch.fft.irfft(filtered, n=length, dim=-1, norm="ortho")
    return mixed.reshape(batch, channels, length).transpose(1, 2)


def fourier_mixing(x):
    return torch.fft.fft2(x, dim=(1, 2)).real
