"""PyTorch spectral core: `torch.fft` FFTs, elementwise work on real views.

Tokens are moved to the last, contiguous axis before the FFT. The filter and modReLU run on
`view_as_real` views of the spectrum, not on complex arithmetic, which measured faster on CPU
(`benchmarks/bench_shims.py`, docs/backends.md).

The modReLU filter (the paper's form, `activation="modrelu"`) is one autograd function,
`_ModReLUFilter`, with a hand-written backward: eager torch runs every elementwise op as a
separate kernel with its own output tensor, and on CPU each output above glibc's mmap
threshold (32 MB: a float32 spectrum of batch 8, 256 channels and 4,096 tokens is 34 MB) is
fresh, page-faulted memory. The function makes 4 full-size allocations forward+backward where
autograd of the elementwise formula made about 25, and writes the filtered spectrum into the
FFT's output buffer. Under `torch.compile` (which cannot trace that in-place write) the same
math runs as elementwise ops, which the compiler fuses; `fullgraph=True` traces it without
graph breaks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

name = "torch"


class _ModReLUFilter(torch.autograd.Function):
    """`Z = modReLU(S · W)` with bias `b`, for a complex spectrum `S` and real `W`, `b`
    broadcast to it; 0 where `S · W = 0`. `S` is overwritten with `Z`.

    Forward: `Z = f · S` with `f = W · relu(|W||S| + b) / (|W||S|)`, and `f = 0` where
    `|W||S| = 0`. Backward, in terms of the saved `Z` and `f` (`S = Z / f` where `f ≠ 0`,
    and nothing reaches `S` where `f = 0`), with `κ = Re(conj(Z) · dZ)`:

    - `dS = f · dZ + (W − f) · κ / |Z|² · Z`,
    - `dW = Σ κ / f`, `db = Σ κ / |Z|`,

    the sums over the axes `W` and `b` were broadcast along, and every term 0 where `f = 0`
    (as the `where`-guarded formula gives: `tests/backends/test_torch.py` compares both).
    """

    @staticmethod
    def forward(ctx, spectrum, scale, shift):
        z = torch.view_as_real(spectrum)
        magnitude = z[..., 0].square().addcmul_(z[..., 1], z[..., 1]).sqrt_()
        magnitude.mul_(scale.abs())  # |G|, G = W · S
        zero = magnitude == 0
        factor = torch.add(magnitude, shift).relu_()
        factor.div_(magnitude.masked_fill_(zero, 1.0)).mul_(scale).masked_fill_(zero, 0.0)
        z.mul_(factor.unsqueeze(-1))
        ctx.mark_dirty(spectrum)
        ctx.save_for_backward(spectrum, scale, factor)
        ctx.shift_shape = shift.shape
        return spectrum

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        out, scale, factor = ctx.saved_tensors
        z, g = torch.view_as_real(out), torch.view_as_real(grad.resolve_conj())
        inactive = factor == 0
        kappa = (z[..., 0] * g[..., 0]).addcmul_(z[..., 1], g[..., 1]).masked_fill_(inactive, 0.0)
        power = z[..., 0].square().addcmul_(z[..., 1], z[..., 1]).masked_fill_(inactive, 1.0)
        grad_scale = torch.div(kappa, factor).masked_fill_(inactive, 0.0).sum_to_size(scale.shape)
        correction = torch.sub(scale, factor).mul_(kappa).div_(power)
        grad_shift = kappa.div_(power.sqrt_()).sum_to_size(ctx.shift_shape)
        grad_spectrum = (g * factor.unsqueeze(-1)).addcmul_(z, correction.unsqueeze(-1))
        return torch.view_as_complex(grad_spectrum), grad_scale, grad_shift


def _filter_elementwise(spectrum, scale, shift, activation):
    """The filter and activation as elementwise autograd ops: what `torch.compile` fuses (it
    cannot trace `_ModReLUFilter`'s in-place `mark_dirty`), and the GELU form."""
    re = spectrum.real * scale
    im = spectrum.imag * scale
    if activation == "gelu":
        re = re + shift
    sq = re * re + im * im
    nonzero = sq > 0
    # sqrt and the division only ever see nonzero values: finite gradients at z = 0.
    mag = torch.sqrt(torch.where(nonzero, sq, torch.ones_like(sq)))
    activated = torch.relu(mag + shift) if activation == "modrelu" else F.gelu(mag)
    factor = torch.where(nonzero, activated / mag, torch.zeros_like(mag))
    return torch.complex(re * factor, im * factor)


def spectral_filter(x, scale, shift, *, num_heads: int, activation: str = "modrelu"):
    batch, length, channels = x.shape
    xt = x.transpose(1, 2).reshape(batch, num_heads, channels // num_heads, length)
    spectrum = torch.fft.rfft(xt, dim=-1, norm="ortho")  # (B, H, d, K)
    scale = scale[:, :, None, :]
    shift = shift[:, :, None, :]
    if activation == "modrelu" and not torch.compiler.is_compiling():
        filtered = _ModReLUFilter.apply(spectrum, scale, shift)
    else:
        filtered = _filter_elementwise(spectrum, scale, shift, activation)
    mixed = torch.fft.irfft(filtered, n=length, dim=-1, norm="ortho")
    return mixed.reshape(batch, channels, length).transpose(1, 2)


def fourier_mixing(x):
    return torch.fft.fft2(x, dim=(1, 2)).real
