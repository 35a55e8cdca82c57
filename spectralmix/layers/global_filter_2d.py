"""GFNet's global filter over a patch grid: a learned complex filter per 2-D frequency."""

from __future__ import annotations

import math
from types import MappingProxyType

import keras
import numpy as np
from keras import ops

from spectralmix import ops as spectral_ops
from spectralmix import sequence_parallel
from spectralmix.backends import dft, spectral_core
from spectralmix.layers import _checks
from spectralmix.layers.global_filter import (
    add_complex_weight,
    complex_multiply,
    filter_initializer,
)


@keras.saving.register_keras_serializable(package="spectralmix")
class GlobalFilter2D(keras.layers.Layer):
    """GFNet token mixer over an image's patch grid: `y = irfft2(rfft2(x) · W)`.

    The tokens `(B, N, D)` are an optional class token, then the `h · w` patches of a grid in
    row-major order (as `FFTNetViTBackbone` and GFNet lay them out). With `K = w // 2 + 1`:

    1. `F = rfft2(patches, axes=(h, w), norm="ortho")`, complex `(B, h, K, D)`;
    2. `Z = F · W`, a learned complex value per (row frequency, column frequency, channel);
    3. `y = irfft2(Z, s=(h, w), norm="ortho")`, back to `(B, h · w, D)`.

    The filter is linear, so the forward and inverse scales cancel (any matching pair of norms
    gives the same result; GFNet writes `"ortho"`). It is not causal.

    `W` is stored as two real weights, `filter_2d_real` and `filter_2d_imag`, each
    `(h, K, D)`: GFNet's `complex_weight[..., 0]` and `[..., 1]` (named apart from the 1-D
    `GlobalFilter`'s, whose rank differs, so one layout map holds both).

    Class token: GFNet has none (it averages the patches after its last block). Here a class
    token, if there is one, is the first token; it does not enter the transform (it is not a
    point of the grid), and its output is the mean of the patches the layer is given (over the
    real patches under a mask): each block hands the class token the average pooling GFNet
    reads once at the end. It is the mean of the filter's input, not of its output
    (`Re W[0, 0] · mean`), so it does not hang on the filter's scale: at GFNet's `0.02` init
    the output's mean trained worse (docs/layers.md, "GlobalFilter and GlobalFilter2D").

    The grid: `grid_shape=(h, w)` gives the filter's grid; without it the grid is square,
    `s × s`, from `max_sequence_length` (or the first input's length): `s² + 1` tokens with a
    class token, `s²` without. `class_token=None` decides from that count (one more than a
    square: a class token; a square: none). At run time the patches form `grid_shape` if they
    are `h · w` of them, else a square grid (`FFTNetViTBackbone` at another image size), and
    the filter is resampled to it: along the half-spectrum (column) axis by linear
    interpolation over normalised frequency (`spectralmix.ops.resample_spectrum`, as the 1-D
    `GlobalFilter`), along the two-sided (row) axis by the same interpolation read
    periodically in frequency (negative frequencies next to zero), real and imaginary parts
    alike; at the built grid it is used as it is.

    Masks: padded tokens are zeroed before the transform, padded outputs are zero.

    Mixed precision: the transforms and the filter run in float32 and the result is cast back
    to the layer's compute dtype; the two weights are float32.

    Args:
        grid_shape: `(h, w)`, the patch grid the filter is defined for. Defaults to the square
            grid of `max_sequence_length` tokens (less the class token).
        class_token: whether the first token is a class token; `None` (default) decides from
            the token count (see above).
        max_sequence_length: the token count the filter is defined for (patches and class
            token), when `grid_shape` is not given. Defaults to the sequence length of the
            first input the layer is built on. `FFTNetViTBackbone` passes `s² + 1`.
        fft_impl: `"fft"` (the framework's FFTs, default), `"dft"` (matmuls against cos/sin
            matrices of the run-time grid: the same function, no FFT op) or `"auto"` (the
            DFT when the grid has at most as many patches as the length measured faster on
            this backend's CPU); see `AdaptiveSpectralFilter`.
        real_initializer: initializer of `filter_2d_real`. Defaults to GFNet's
            `normal(0, 0.02²)` (`None`); `"ones"` with `imag_initializer="zeros"` starts at
            the identity filter.
        imag_initializer: initializer of `filter_2d_imag`. Defaults to GFNet's
            `normal(0, 0.02²)`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape:
        `(batch, tokens, channels)`, floating point: `tokens = [1 +] h · w`.

    Output shape:
        Same as the input.

    Call arguments:
        inputs: the token features.
        mask: optional boolean `(batch, tokens)` padding mask.

    Examples:
        >>> import numpy as np
        >>> layer = GlobalFilter2D()  # a class token and a 4 x 4 grid, from 17 tokens
        >>> y = layer(np.random.rand(2, 17, 8).astype("float32"))
        >>> tuple(y.shape), layer.grid_shape, layer.class_token
        ((2, 17, 8), (4, 4), True)
        >>> tuple(layer.filter_2d_real.shape)  # (h, w // 2 + 1, channels)
        (4, 3, 8)

    Reference:
        Rao et al., "Global Filter Networks for Image Classification", NeurIPS 2021,
        arXiv:2107.00645.
    """

    causal = False
    token_grid = True
    model_arguments = ("max_sequence_length",)
    # The filter acts on each channel alone: its channel axis splits with no communication.
    model_parallel_layout = MappingProxyType(
        {"filter_2d_real": (None, None, "model"), "filter_2d_imag": (None, None, "model")}
    )

    def __init__(
        self,
        grid_shape=None,
        class_token=None,
        max_sequence_length=None,
        fft_impl="fft",
        real_initializer=None,
        imag_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.grid_shape = _grid_shape(grid_shape)
        self.class_token = (
            None if class_token is None else _checks.boolean("class_token", class_token)
        )
        self.max_sequence_length = _checks.optional_positive_int(
            "max_sequence_length", max_sequence_length
        )
        self.fft_impl = _checks.choice("fft_impl", fft_impl, _checks.FFT_IMPLS)
        self.real_initializer = filter_initializer("real_initializer", real_initializer)
        self.imag_initializer = filter_initializer("imag_initializer", imag_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        shape = _checks.sequence_shape("GlobalFilter2D", input_shape)
        tokens = self.max_sequence_length or shape[1]
        self.class_token, self.grid_shape = _layout(self.grid_shape, self.class_token, tokens)
        height, width = self.grid_shape
        self.filter_2d_real, self.filter_2d_imag = add_complex_weight(
            self,
            "filter_2d",
            (height, width // 2 + 1, shape[-1]),
            self.real_initializer,
            self.imag_initializer,
        )

    def _grid(self, patches):
        """The run-time grid `(h, w)` of `patches` (an int or a scalar tensor)."""
        height, width = self.grid_shape
        if isinstance(patches, int):
            if patches == height * width:
                return height, width
            side = math.isqrt(patches)
            if side * side != patches:
                raise ValueError(
                    f"GlobalFilter2D: {patches} patch tokens form neither the filter's grid "
                    f"{self.grid_shape} nor a square grid (class_token={self.class_token}). "
                    "Pass `grid_shape` or `class_token` to match the tokens."
                )
            return side, side
        side = ops.cast(ops.round(ops.sqrt(ops.cast(patches, "float32"))), "int32")
        built = ops.equal(patches, height * width)
        return ops.where(built, height, side), ops.where(built, width, side)

    def _filter(self, height, width):
        """`(real, imag)`, each `(D, K, h)`: the filter resampled to the grid `(h, w)`."""
        built_height, built_width = self.grid_shape
        parts = []
        for weight in (self.filter_2d_real, self.filter_2d_imag):
            weight = ops.transpose(weight, (2, 0, 1))  # (D, h0, K0)
            weight = spectral_ops.resample_spectrum(weight, width, built_width)
            weight = ops.transpose(weight, (0, 2, 1))  # (D, K, h0)
            parts.append(_resample_circular(weight, height, built_height))
        return parts

    def call(self, inputs, mask=None, training=None):
        if sequence_parallel.is_active():  # tokens sharded over devices
            return sequence_parallel.sharded_call(self, inputs, mask)
        _checks.floating_input("GlobalFilter2D", inputs)
        x = ops.cast(inputs, _checks.island_dtype(self.dtype_policy))
        tokens = x.shape[1] if x.shape[1] is not None else ops.shape(x)[1]
        if mask is not None:
            token_weight = ops.expand_dims(ops.cast(mask, x.dtype), -1)
            x = x * token_weight
        first = int(self.class_token)
        height, width = self._grid(tokens - first)
        filter_re, filter_im = self._filter(height, width)
        patches = ops.reshape(x[:, first:], (-1, height, width, x.shape[-1]))
        if spectral_core(self.fft_impl, tokens - first).name == "dft":
            y = _dft_filter_2d(patches, filter_re, filter_im, height, width)
        else:
            y = _fft_filter_2d(patches, filter_re, filter_im, height, width)
        y = ops.reshape(y, (-1, tokens - first, x.shape[-1]))
        if first:
            patch_mask = None if mask is None else mask[:, first:]
            pooled = spectral_ops.masked_mean_tokens(x[:, first:], patch_mask)
            y = ops.concatenate([ops.expand_dims(pooled, 1), y], axis=1)
        if mask is not None:
            y = y * token_weight
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "grid_shape": self.grid_shape,
            "class_token": self.class_token,
            "max_sequence_length": self.max_sequence_length,
            "fft_impl": self.fft_impl,
            "real_initializer": keras.initializers.serialize(self.real_initializer),
            "imag_initializer": keras.initializers.serialize(self.imag_initializer),
        }

    @staticmethod
    def count_flops(tally, tokens, channels, arguments):
        """Per channel: rfft along the `w` columns of each of the `h` rows, a complex FFT
        along the rows of each of the `K = w // 2 + 1` column bins, their inverses, one complex
        product per (row bin, column bin); with a class token, the mean of the patches.
        Resampling the filter does not depend on the example and is not counted."""
        from spectralmix import flops

        class_token, built_grid = _layout(
            _grid_shape(arguments.get("grid_shape")),
            arguments.get("class_token"),
            arguments.get("max_sequence_length") or tokens,
        )
        patches = tokens - int(class_token)
        height, width = built_grid
        if patches != height * width:
            side = math.isqrt(patches)
            if side * side != patches:
                raise ValueError(
                    f"GlobalFilter2D: {patches} patch tokens form neither the filter's grid "
                    f"{built_grid} nor a square grid. Received: tokens={tokens}"
                )
            height = width = side
        bins = width // 2 + 1
        per_channel = height * flops.fft_cost(flops.REAL_FFT_COEFFICIENT, width) + (
            bins * flops.fft_cost(flops.COMPLEX_FFT_COEFFICIENT, height)
        )
        tally.add("fft", 2 * channels * per_channel)
        tally.add("spectral_filter", flops.COMPLEX_MULTIPLY_PER_BIN * height * bins * channels)
        if class_token:
            tally.add("elementwise", flops.MEAN_PER_ELEMENT * patches * channels)


def _grid_shape(value):
    """`None` or `(h, w)` of positive ints (a list from a JSON config too)."""
    if value is None:
        return None
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)
    ):
        raise ValueError(
            f"`grid_shape` must be a pair of positive integers (h, w). Received: "
            f"grid_shape={value!r}"
        )
    return tuple(int(v) for v in value)


def _layout(grid_shape, class_token, tokens):
    """`(class_token, (h, w))` of the built filter, from the arguments and the token count
    `tokens` (may be `None` when `grid_shape` and `class_token` are both given)."""
    if grid_shape is not None:
        patches = grid_shape[0] * grid_shape[1]
        if class_token is None:
            if tokens is None or tokens == patches:
                class_token = False
            elif tokens == patches + 1:
                class_token = True
            else:
                raise ValueError(
                    f"GlobalFilter2D: {tokens} tokens are neither the {patches} patches of "
                    f"grid_shape={grid_shape} nor those and a class token. "
                    f"Received: max_sequence_length={tokens}"
                )
        return class_token, grid_shape
    if tokens is None:
        raise ValueError(
            "GlobalFilter2D needs `grid_shape` or `max_sequence_length` when the number of "
            "tokens is not known at build time."
        )
    candidates = (False, True) if class_token is None else (class_token,)
    for has_class_token in candidates:
        patches = tokens - int(has_class_token)
        side = math.isqrt(max(patches, 0))
        if patches > 0 and side * side == patches:
            return has_class_token, (side, side)
    raise ValueError(
        f"GlobalFilter2D: {tokens} tokens do not form a square patch grid "
        + ("(s² or a class token and s²)" if class_token is None else f"with {class_token=}")
        + "; pass `grid_shape=(h, w)` for another grid. "
        f"Received: max_sequence_length={tokens}"
    )


def _resample_circular(values, length, max_length):
    """`spectralmix.reference.resample_spectrum_circular` on the last axis: bin `m` of a
    two-sided `length`-point FFT (signed frequency `m / length`, the Nyquist bin at `+1/2`)
    interpolated linearly between the bins of `max_length`, read periodically. The identity at
    `length == max_length`; `length` may be a scalar tensor."""
    if isinstance(length, int):
        if length == max_length:
            return values
        m = np.arange(length, dtype=np.int64)
        signed = np.where(2 * m <= length, m, m - length)
        # Offset by a whole period so the floor division sees non-negative numbers.
        lower, remainder = np.divmod(signed * max_length + max_length * length, length)
        weight = ops.convert_to_tensor(remainder / length, values.dtype)
        index0, index1 = (lower % max_length).astype("int32"), ((lower + 1) % max_length)
        index1 = index1.astype("int32")
    else:
        length = ops.cast(length, "int32")
        m = ops.arange(0, length, dtype="int32")
        signed = ops.where(2 * m <= length, m, m - length)
        shifted = signed * max_length + max_length * length
        lower = ops.floor_divide(shifted, length)
        weight = ops.cast(shifted - lower * length, values.dtype) / ops.cast(length, values.dtype)
        index0, index1 = ops.mod(lower, max_length), ops.mod(lower + 1, max_length)
    return (
        ops.take(values, index0, axis=-1) * (1.0 - weight)
        + ops.take(values, index1, axis=-1) * weight
    )


def _fft_filter_2d(patches, filter_re, filter_im, height, width):
    """`irfft2(rfft2(x) · W)` of `patches` `(B, h, w, D)`, `W` `(D, K, h)`, on `keras.ops`: rfft
    along the columns, FFT along the rows, and back (the inverse row FFT as
    `conj(FFT(conj(·)))`, its `1/h` folded into the filter). Returns `(B, h, w, D)`."""
    scale = 1.0 / ops.cast(height, patches.dtype)
    re, im = ops.rfft(ops.transpose(patches, (0, 3, 1, 2)))  # (B, D, h, K)
    re, im = ops.fft((ops.swapaxes(re, -1, -2), ops.swapaxes(im, -1, -2)))  # (B, D, K, h)
    # The inverse row FFT of Z = F · W is conj(FFT(conj(Z))) / h: conj(Z / h) directly.
    filter_re, filter_im = filter_re * scale, filter_im * scale
    re, im = re * filter_re - im * filter_im, re * (-filter_im) - im * filter_re
    re, im = ops.fft((re, im))
    re, im = ops.swapaxes(re, -1, -2), ops.swapaxes(-im, -1, -2)  # (B, D, h, K)
    return ops.transpose(ops.irfft((re, im), fft_length=width), (0, 2, 3, 1))


def _complex_dft(length, dtype):
    """`(forward, inverse)` `(2L, 2L)`: the unnormalised complex DFT of `L = length` points on
    stacked `[real; imag]` parts (`[[C, S], [-S, C]]`, `C = cos`, `S = sin` of `2πmn/L`) and
    its unnormalised inverse, the transpose."""
    if isinstance(length, int):
        index = np.arange(length)
        angle = (2.0 * np.pi / length) * ((index[:, None] * index[None, :]) % length)
        cos, sin = (
            ops.convert_to_tensor(np.cos(angle), dtype),
            ops.convert_to_tensor(np.sin(angle), dtype),
        )
    else:
        index = ops.arange(0, length, dtype="int32")
        phase = ops.mod(ops.expand_dims(index, 1) * ops.expand_dims(index, 0), length)
        angle = ops.cast(phase, dtype) * (2.0 * math.pi) / ops.cast(length, dtype)
        cos, sin = ops.cos(angle), ops.sin(angle)
    forward = ops.concatenate(
        [ops.concatenate([cos, sin], axis=1), ops.concatenate([-sin, cos], axis=1)], axis=0
    )
    return forward, ops.transpose(forward)


def _dft_filter_2d(patches, filter_re, filter_im, height, width):
    """The same as `_fft_filter_2d` as matmuls: the real DFT of the columns
    (`spectralmix.backends.dft`, orthonormal), the complex DFT of the rows, and back."""
    dtype = patches.dtype
    row_forward, row_inverse = _complex_dft(height, dtype)  # (2h, 2h)
    column_forward, column_inverse = dft.rdft_matrices(width, dtype)  # (2K, w), (w, 2K)
    bins = width // 2 + 1
    scale = 1.0 / ops.cast(height, dtype)
    filter_re = ops.transpose(filter_re, (2, 1, 0)) * scale  # (h, K, D)
    filter_im = ops.transpose(filter_im, (2, 1, 0)) * scale
    # einsum, not matmul: Keras 3.15's torch matmul computes float64 in float32. The batched
    # operand first: TFLite's converter turns `einsum(matrix, batched)` with a dynamic batch
    # into a reshape of static shape (-1, ...), which the LiteRT interpreter refuses to load.
    spectrum = ops.einsum("bhwd,kw->bhkd", patches, column_forward)  # (B, h, 2K, D)
    stacked = ops.concatenate([spectrum[:, :, :bins], spectrum[:, :, bins:]], axis=1)
    spectrum = ops.einsum("bhkd,mh->bmkd", stacked, row_forward)  # (B, 2h, K, D)
    re, im = complex_multiply(spectrum[:, :height], spectrum[:, height:], filter_re, filter_im)
    mixed = ops.einsum("bhkd,mh->bmkd", ops.concatenate([re, im], axis=1), row_inverse)
    columns = ops.concatenate([mixed[:, :height], mixed[:, height:]], axis=2)  # (B, h, 2K, D)
    return ops.einsum("bhkd,wk->bhwd", columns, column_inverse)
