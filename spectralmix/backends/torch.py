"""PyTorch spectral core: `torch.fft` FFTs, elementwise work on real tensors.

Tokens are moved to the last, contiguous axis before the FFT, and the filter and modReLU run
on the real and imaginary parts as float tensors: measured faster forward+backward than complex
arithmetic on CPU (`benchmarks/bench_shims.py`, docs/backends.md). `torch.compile(fullgraph=True)`
traces it without graph breaks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

name = "torch"


def spectral_filter(x, scale, shift, *, num_heads: int, activation: str = "modrelu"):
    batch, length, channels = x.shape
    xt = x.transpose(1, 2).reshape(batch, num_heads, channels // num_heads, length)
    spectrum = torch.fft.rfft(xt, dim=-1, norm="ortho")  # (B, H, d, K)
    scale = scale[:, :, None, :]
    shift = shift[:, :, None, :]
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
    mixed = torch.fft.irfft(torch.complex(re * factor, im * factor), n=length, dim=-1, norm="ortho")
    return mixed.reshape(batch, channels, length).transpose(1, 2)


def fourier_mixing(x):
    return torch.fft.fft2(x, dim=(1, 2)).real
