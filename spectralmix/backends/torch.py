"""PyTorch spectral core: `torch.fft` on native complex tensors.

Tokens are moved to the last, contiguous axis before the FFT: an FFT along a strided axis is
several times slower in torch (`benchmarks/bench_shims.py`). `torch.compile(fullgraph=True)`
traces it without graph breaks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

name = "torch"


def _activate(spectrum: torch.Tensor, shift: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "gelu":
        spectrum = spectrum + shift
    # abs() of a complex tensor has a zero (not NaN) gradient at 0 in torch; the `where`s keep
    # the division away from |z| = 0.
    mag = spectrum.abs()
    nonzero = mag > 0
    safe_mag = torch.where(nonzero, mag, torch.ones_like(mag))
    if activation == "modrelu":
        activated = torch.relu(mag + shift)
    else:
        activated = F.gelu(mag)
    return spectrum * torch.where(nonzero, activated / safe_mag, torch.zeros_like(mag))


def spectral_filter(x, scale, shift, *, num_heads: int, activation: str = "modrelu"):
    batch, length, channels = x.shape
    xt = x.transpose(1, 2).reshape(batch, num_heads, channels // num_heads, length)
    spectrum = torch.fft.rfft(xt, dim=-1, norm="ortho")  # (B, H, d, K)
    spectrum = spectrum * scale[:, :, None, :]
    mixed = torch.fft.irfft(
        _activate(spectrum, shift[:, :, None, :], activation), n=length, dim=-1, norm="ortho"
    )
    return mixed.reshape(batch, channels, length).transpose(1, 2)


def fourier_mixing(x):
    return torch.fft.fft2(x, dim=(1, 2)).real
