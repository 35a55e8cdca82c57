"""GFNet's global filter over the tokens: a learned complex filter per (frequency bin, channel)."""

from __future__ import annotations

from types import MappingProxyType

import keras
from keras import ops

from spectralmix import ops as spectral_ops
from spectralmix import sequence_parallel
from spectralmix.backends import dft, spectral_core
from spectralmix.layers import _checks

#: GFNet's initialisation of each part of the complex weight: `torch.randn(...) * 0.02`.
GFNET_STDDEV = 0.02


def filter_initializer(name, value):
    """A Keras initializer from argument `name`'s `value`; `None` is GFNet's `normal(0, 0.02²)`."""
    if value is None:
        return keras.initializers.RandomNormal(stddev=GFNET_STDDEV)
    try:
        return keras.initializers.get(value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"`{name}` must be a Keras initializer or its name ({error}). Received: "
            f"{name}={value!r}"
        ) from None


def fresh(initializer):
    """A new instance of `initializer` from its config: an unseeded one (Keras fixes a seed per
    instance) then draws new values for each weight it makes, not the same for both parts or
    for every layer that shares the instance."""
    return initializer.__class__.from_config(initializer.get_config())


def add_complex_weight(layer, name, shape, real_initializer, imag_initializer):
    """A complex weight of `layer` as two real float32 weights `{name}_real`, `{name}_imag`
    (the spectral island's dtype, `autocast=False`: a mixed-precision call sees them float32,
    not bf16/fp16); each draws from its own fresh initializer."""
    return tuple(
        layer.add_weight(
            name=f"{name}_{part}",
            shape=shape,
            initializer=fresh(initializer),
            dtype=_checks.island_dtype(layer.dtype_policy),
            autocast=False,
        )
        for part, initializer in (("real", real_initializer), ("imag", imag_initializer))
    )


def complex_multiply(re, im, filter_re, filter_im):
    """`(re + i·im) · (filter_re + i·filter_im)` as a `(real, imag)` pair."""
    return re * filter_re - im * filter_im, re * filter_im + im * filter_re


@keras.saving.register_keras_serializable(package="spectralmix")
class GlobalFilter(keras.layers.Layer):
    """GFNet token mixer over a sequence: `y = irfft(rfft(x) · W)` along the tokens.

    For `x` of shape `(B, N, D)` with `K = N // 2 + 1` frequency bins, `W` is a learned
    complex value per (bin, channel), `(K, D)`, applied to each channel's spectrum:

    1. `F = rfft(x, axis=tokens, norm="ortho")`, complex `(B, K, D)`;
    2. `Z = F · W` (complex product per bin and channel);
    3. `y = irfft(Z, n=N, norm="ortho")`, `(B, N, D)`.

    That is a circular convolution of each channel with a learned length-`N` kernel: every
    token sees every other, in `O(N log N)`. The filter is linear, so the forward and inverse
    scales cancel and the result is the same for any matching pair of norms (GFNet writes
    `"ortho"`). It is not causal. No residual, normalisation or dropout (`MetaFormerBlock`
    adds those).

    `W` is stored as two real weights, `filter_real` and `filter_imag`, each `(K_f, D)`
    (GFNet's layout, `complex_weight[..., 0]` and `[..., 1]`): a complex variable trained with
    `fit` diverges on JAX, and not every optimizer or saver handles one. The imaginary parts of
    the DC bin (and of the Nyquist bin for an even length) drop out of a real `irfft`, as in
    GFNet, so they receive no gradient.

    Filter resolution and any length: `W` is defined on `K_f = filter_bins` bins, at
    normalised frequencies `j / L_f` (`L_f = max_sequence_length` when
    `K_f = max_sequence_length // 2 + 1`, else `2·(K_f - 1)`), and resampled to the input's
    length by linear interpolation over normalised frequency
    (`spectralmix.ops.resample_spectrum`, the rule FFTNet's filter uses), real and imaginary
    parts alike; at `L_f` tokens it is used as it is. GFNet's maintainers serve a new
    resolution the same way, by interpolating the filter weight. `filter_bins = N // 2 + 1` is
    GFNet's filter at `N` tokens; the default, `min(max_sequence_length // 2 + 1, 2049)`
    (`_checks.DEFAULT_MAX_FILTER_BINS`), keeps that form up to 4,096 tokens and bounds the
    parameters beyond: the layer has `2·K_f·D` of them (at `D = 64` and 1,048,576 tokens,
    262,272 by default against 67,108,992 for one value per bin).

    Masks: padded tokens are zeroed before the FFT and padded outputs are zero, so what sits at
    padded positions never changes the outputs at real positions.

    Mixed precision: the FFTs and the filter run in float32 (the "spectral island"), the two
    weights are float32, and the result is cast back to the layer's compute dtype.

    Args:
        max_sequence_length: the length `N` the filter is meant for: it sets the default
            `filter_bins`. Defaults to the sequence length of the first input the layer is
            built on.
        filter_bins: the number of frequency bins `K_f >= 2` the filter is defined on
            (resampled to every input length). Defaults to
            `min(max_sequence_length // 2 + 1, 2049)`; `N // 2 + 1` is GFNet's filter at `N`
            tokens.
        fft_impl: `"fft"` (the framework's FFT, default), `"dft"` (matmuls against cos/sin
            matrices of the run-time length: the same function, no FFT op, for export and
            short sequences) or `"auto"` (the DFT up to the length measured faster on this
            backend's CPU); see `AdaptiveSpectralFilter`.
        real_initializer: initializer of `filter_real`. Defaults to GFNet's `normal(0, 0.02²)`
            (`None`); `"ones"` with `imag_initializer="zeros"` starts at the identity filter.
        imag_initializer: initializer of `filter_imag`. Defaults to GFNet's `normal(0, 0.02²)`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape:
        `(batch, sequence_length, channels)`, floating point.

    Output shape:
        Same as the input.

    Call arguments:
        inputs: the token features.
        mask: optional boolean `(batch, sequence_length)` padding mask.

    Examples:
        >>> import numpy as np
        >>> identity = GlobalFilter(real_initializer="ones", imag_initializer="zeros")
        >>> x = np.random.rand(2, 16, 8).astype("float32")
        >>> bool(np.allclose(keras.ops.convert_to_numpy(identity(x)), x, atol=1e-5))
        True
        >>> [tuple(w.shape) for w in identity.weights]  # K = 16 // 2 + 1 bins, 8 channels
        [(9, 8), (9, 8)]

    Reference:
        Rao et al., "Global Filter Networks for Image Classification", NeurIPS 2021,
        arXiv:2107.00645.
    """

    # A circular convolution: every output depends on every token, later ones included.
    causal = False
    model_arguments = ("max_sequence_length", "filter_bins")
    # The filter acts on each channel alone: its channel axis splits with no communication.
    model_parallel_layout = MappingProxyType(
        {"filter_real": (None, "model"), "filter_imag": (None, "model")}
    )

    def __init__(
        self,
        max_sequence_length=None,
        fft_impl="fft",
        real_initializer=None,
        imag_initializer=None,
        filter_bins=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_sequence_length = _checks.optional_positive_int(
            "max_sequence_length", max_sequence_length
        )
        self.filter_bins = _checks.optional_filter_bins(filter_bins)
        self.fft_impl = _checks.choice("fft_impl", fft_impl, _checks.FFT_IMPLS)
        self.real_initializer = filter_initializer("real_initializer", real_initializer)
        self.imag_initializer = filter_initializer("imag_initializer", imag_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        shape = _checks.sequence_shape("GlobalFilter", input_shape)
        if self.max_sequence_length is None and shape[1] is not None:
            self.max_sequence_length = int(shape[1])
        if self.max_sequence_length is None and self.filter_bins is None:
            raise ValueError(
                "GlobalFilter needs `max_sequence_length` or `filter_bins` when the sequence "
                f"length is not known at build time. Received: input_shape={shape}"
            )
        # The grid of the filter: `filter_bins` bins at frequencies j / filter_length.
        self.filter_length, self.filter_bins = _checks.filter_grid(
            self.filter_bins, self.max_sequence_length
        )
        self.filter_real, self.filter_imag = add_complex_weight(
            self,
            "filter",
            (self.filter_bins, shape[-1]),
            self.real_initializer,
            self.imag_initializer,
        )

    def _filter(self, length):
        """`(real, imag)`, each `(D, K)`: the filter resampled to `length` tokens."""
        return tuple(
            spectral_ops.resample_spectrum(ops.transpose(weight), length, self.filter_length)
            for weight in (self.filter_real, self.filter_imag)
        )

    def call(self, inputs, mask=None, training=None):
        if sequence_parallel.is_active():  # tokens sharded over devices
            return sequence_parallel.sharded_call(self, inputs, mask)
        _checks.floating_input("GlobalFilter", inputs)
        x = ops.cast(inputs, _checks.island_dtype(self.dtype_policy))
        length = x.shape[1] if x.shape[1] is not None else ops.shape(x)[1]
        if mask is not None:
            token_weight = ops.expand_dims(ops.cast(mask, x.dtype), -1)
            x = x * token_weight
        filter_re, filter_im = self._filter(length)
        if spectral_core(self.fft_impl, length).name == "dft":
            y = _dft_filter(x, ops.transpose(filter_re), ops.transpose(filter_im), length)
        else:
            y = _fft_filter(x, filter_re, filter_im, length)
        if mask is not None:
            y = y * token_weight
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "max_sequence_length": self.max_sequence_length,
            "filter_bins": self.filter_bins,
            "fft_impl": self.fft_impl,
            "real_initializer": keras.initializers.serialize(self.real_initializer),
            "imag_initializer": keras.initializers.serialize(self.imag_initializer),
        }

    @classmethod
    def from_config(cls, config):
        # Saved before `filter_bins` existed: one filter value per bin of its length.
        length = config.get("max_sequence_length")
        return super().from_config(
            _checks.legacy_default(config, "filter_bins", length and length // 2 + 1)
        )

    @staticmethod
    def count_parameters(channels, arguments):
        """`2·K_f·D`: the real and imaginary filter on `K_f` bins for `D` channels."""
        _, bins = _checks.filter_grid(
            _checks.optional_filter_bins(arguments.get("filter_bins")),
            arguments["max_sequence_length"],
        )
        return 2 * bins * channels

    @staticmethod
    def count_flops(tally, tokens, channels, arguments):
        """rfft and irfft over the tokens per channel and one complex product per (bin,
        channel). Resampling the filter does not depend on the example and is not counted."""
        from spectralmix import flops

        bins = tokens // 2 + 1
        tally.add("fft", 2 * channels * flops.fft_cost(flops.REAL_FFT_COEFFICIENT, tokens))
        tally.add("spectral_filter", flops.COMPLEX_MULTIPLY_PER_BIN * bins * channels)


def _fft_filter(x, filter_re, filter_im, length):
    """`irfft(rfft(x) · W)` along the tokens of `x` `(B, N, D)`, `W` `(D, K)`, on `keras.ops`
    (unnormalised forward, `1/N` inverse: the same as the orthonormal pair for a linear filter)."""
    re, im = ops.rfft(ops.transpose(x, (0, 2, 1)))  # (B, D, K)
    re, im = complex_multiply(re, im, filter_re, filter_im)
    return ops.transpose(ops.irfft((re, im), fft_length=length), (0, 2, 1))


def _dft_filter(x, filter_re, filter_im, length):
    """The same as `_fft_filter` as two matmuls (`spectralmix.backends.dft`), `W` `(K, D)`."""
    forward, inverse = dft.rdft_matrices(length, x.dtype)  # (2K, N), (N, 2K), orthonormal
    num_bins = length // 2 + 1
    # einsum, not matmul: Keras 3.15's torch matmul computes float64 in float32. The batched
    # operand first: TFLite's converter turns `einsum(matrix, batched)` with a dynamic batch
    # into a reshape of static shape (-1, ...), which the LiteRT interpreter refuses to load.
    spectrum = ops.einsum("bnd,kn->bkd", x, forward)
    re, im = complex_multiply(spectrum[:, :num_bins], spectrum[:, num_bins:], filter_re, filter_im)
    return ops.einsum("bkd,nk->bnd", ops.concatenate([re, im], axis=1), inverse)
