"""The FFTNet adaptive spectral filter: global token mixing in O(N log N)."""

from __future__ import annotations

from types import MappingProxyType

import keras
from keras import ops

from spectralmix import ops as spectral_ops
from spectralmix import sequence_parallel
from spectralmix.backends import spectral_core
from spectralmix.layers import _checks


@keras.saving.register_keras_serializable(package="spectralmix")
class AdaptiveSpectralFilter(keras.layers.Layer):
    """FFTNet token mixer: an input-adaptive filter in the frequency domain of the tokens.

    For `x` of shape `(B, N, D)` split into `H` heads of `d = D / H` channels, with
    `K = N // 2 + 1` frequency bins (v1, the paper's form; see "Filter resolution" below for
    a filter on fewer bins):

    1. `F = rfft(x, axis=tokens, norm="ortho")`, per head;
    2. `c = mean_tokens(x)` (over the real tokens when a mask is given);
    3. `W = W_base + tanh(Dense_2(GELU(Dense_1(c))))`, one real value per (head, bin);
       `W_base` starts at ones, `Dense_1: D → D`, `Dense_2: D → H·K`;
    4. `Z = modReLU(F · W)` with a learnable bias `b` per (head, bin), initialised to `-0.1`:
       `Z = ReLU(|G| + b) · G / max(|G|, ε)` for `G = F · W` (see `ModReLU`; `ε = 1e-3` as in
       the authors' code, `modrelu_epsilon=0` for the exact form);
    5. `y = irfft(Z, n=N, norm="ortho")`, heads merged back to `(B, N, D)`.

    It returns the mixed tokens only: no residual, no normalisation, no dropout
    (`FFTNetBlock` adds those). `variant="v2"` selects the authors' later form: the MLP emits a
    scale `s` and a shift `t` per (head, bin),
    `Z = GELU(|G|) · G / |G|` with `G = F · W_base · (1 + s) + b + t`.

    Filter resolution and any length: `W_base`, `b` and the MLP's output are defined on
    `K_f = filter_bins` bins, at normalised frequencies `j / L_f` (`j < K_f`, `L_f` the filter
    length: `max_sequence_length` when `K_f = max_sequence_length // 2 + 1`, else
    `2·(K_f - 1)`), and resampled to the input's length by linear interpolation over
    normalised frequency (`spectralmix.ops.resample_spectrum`); at `L_f` tokens they are used
    as they are. `filter_bins = N // 2 + 1` is the paper's exact form at `N` tokens. The
    default, `min(max_sequence_length // 2 + 1, 2049)` (`_checks.DEFAULT_MAX_FILTER_BINS`),
    keeps the exact form up to 4,096 tokens and bounds the parameters beyond. With `C`
    channels the layer has `2·H·K_f + C·C + C + (C + 1)·H·K_f·m` parameters: the filter and
    the bias, `Dense_1`, and `Dense_2` (`m = 1` in v1, `2` in v2); `2·H·K_f` with
    `adaptive=False`. At `C = 64`, `H = 4` and 1,048,576 tokens that is 553,292 by default,
    against 140,513,612 for the per-bin filter (v1).

    Masks: padded tokens are zeroed before the FFT, the context is the mean of the real tokens
    and padded outputs are zero, so what sits at padded positions never changes the outputs.

    Mixed precision: the FFTs, the filter and its MLP run in float32 (the "spectral island") and
    the result is cast back to the layer's compute dtype.

    Args:
        num_heads: number of heads `H`; must divide the channels.
        max_sequence_length: the length `N` the filter is meant for: it sets the default
            `filter_bins`. Defaults to the sequence length of the first input the layer is
            built on.
        filter_bins: the number of frequency bins `K_f >= 2` the filter, the bias and the
            MLP's output are defined on (resampled to every input length). Defaults to
            `min(max_sequence_length // 2 + 1, 2049)`; `N // 2 + 1` is the paper's exact
            filter at `N` tokens.
        adaptive: whether to modulate the filter by the MLP of the mean token. With `False`
            the filter is the learned `W_base` alone (a global, input-independent filter).
        variant: `"v1"` (the paper, default) or `"v2"` (the authors' later code).
        modrelu_epsilon: modReLU's floor `ε` of `|G|` in its denominator (v1), `>= 0`.
            Defaults to `1e-3`, the authors' value, which bounds the gradient near `G = 0`;
            `0` is the exact modReLU. Unused by `"v2"`, whose `GELU(|G|) / |G|` is bounded.
        fft_impl: how the transforms are computed: `"fft"` (the framework's FFT, default),
            `"dft"` (real matmuls against cos/sin matrices of the run-time length: the same
            function, no FFT op, for export and short sequences) or `"auto"` (the DFT up to the
            length measured faster on this backend's CPU, else the FFT; see
            `spectralmix.backends.dft.CROSSOVER`).
        kernel_initializer: initializer of the MLP kernels.
        bias_initializer: initializer of the MLP biases.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape:
        `(batch, sequence_length, channels)`, floating point.

    Output shape:
        Same as the input.

    Call arguments:
        inputs: the token features.
        mask: optional boolean `(batch, sequence_length)` padding mask (Keras passes it
            automatically from an `Embedding(mask_zero=True)` or a `Masking` layer).

    Examples:
        >>> import numpy as np
        >>> layer = AdaptiveSpectralFilter(num_heads=4)
        >>> y = layer(np.random.rand(2, 16, 32).astype("float32"))
        >>> tuple(y.shape)
        (2, 16, 32)

    Reference:
        Fein-Ashley et al., "The FFT Strikes Back: An Efficient Alternative to
        Self-Attention", arXiv:2502.18394.
    """

    # Not causal: the modReLU acts on the spectrum and the context is the whole sequence's mean.
    causal = False
    model_arguments = (
        "num_heads",
        "max_sequence_length",
        "filter_bins",
        "kernel_initializer",
        "bias_initializer",
    )
    # The filter MLP, Megatron-style: `context_dense` split by output, `modulation_dense` by
    # input, one reduction for the pair; the spectral weights are replicated.
    model_parallel_layout = MappingProxyType(
        {
            "context_dense/kernel": (None, "model"),
            "context_dense/bias": ("model",),
            "modulation_dense/kernel": ("model", None),
        }
    )

    def __init__(
        self,
        num_heads,
        max_sequence_length=None,
        adaptive=True,
        variant="v1",
        fft_impl="fft",
        modrelu_epsilon=_checks.MODRELU_EPSILON,
        filter_bins=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.max_sequence_length = _checks.optional_positive_int(
            "max_sequence_length", max_sequence_length
        )
        self.filter_bins = _checks.optional_filter_bins(filter_bins)
        self.adaptive = _checks.boolean("adaptive", adaptive)
        self.variant = _checks.choice("variant", variant, _checks.VARIANTS)
        self.fft_impl = _checks.choice("fft_impl", fft_impl, _checks.FFT_IMPLS)
        self.modrelu_epsilon = _checks.non_negative_float("modrelu_epsilon", modrelu_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        shape = _checks.sequence_shape("AdaptiveSpectralFilter", input_shape, self.num_heads)
        if self.max_sequence_length is None and shape[1] is not None:
            self.max_sequence_length = int(shape[1])
        if self.max_sequence_length is None and self.filter_bins is None:
            raise ValueError(
                "AdaptiveSpectralFilter needs `max_sequence_length` or `filter_bins` when the "
                f"sequence length is not known at build time. Received: input_shape={shape}"
            )
        # The grid of the filter: `filter_bins` bins at frequencies j / filter_length.
        self.filter_length, self.filter_bins = _checks.filter_grid(
            self.filter_bins, self.max_sequence_length
        )
        channels = shape[-1]
        num_bins = self.filter_bins
        island = _checks.island_dtype(self.dtype_policy)
        # autocast=False: a mixed-precision call must see these float32, not bf16/fp16.
        self.base_filter = self.add_weight(
            name="base_filter",
            shape=(self.num_heads, num_bins),
            initializer="ones",
            dtype=island,
            autocast=False,
        )
        self.spectral_bias = self.add_weight(
            name="spectral_bias",
            shape=(self.num_heads, num_bins),
            initializer=keras.initializers.Constant(-0.1),
            dtype=island,
            autocast=False,
        )
        if self.adaptive:
            outputs_per_bin = 1 if self.variant == "v1" else 2
            self.context_dense = keras.layers.Dense(
                channels,
                activation="gelu",
                kernel_initializer=self.kernel_initializer,
                bias_initializer=self.bias_initializer,
                dtype=island,
                name="context_dense",
            )
            self.context_dense.build((None, channels))
            self.modulation_dense = keras.layers.Dense(
                self.num_heads * num_bins * outputs_per_bin,
                kernel_initializer=self.kernel_initializer,
                bias_initializer=self.bias_initializer,
                dtype=island,
                name="modulation_dense",
            )
            self.modulation_dense.build((None, channels))

    def _filter(self, x, mask):
        """`(scale, shift)`, each `(B or 1, H, K_f)`, from the weights and the context."""
        num_bins = self.filter_bins
        scale = ops.expand_dims(self.base_filter, 0)
        shift = ops.expand_dims(self.spectral_bias, 0)
        if not self.adaptive:
            return scale, shift
        context = spectral_ops.masked_mean_tokens(x, mask)
        modulation = self.modulation_dense(self.context_dense(context))
        if self.variant == "v1":
            return scale + ops.tanh(ops.reshape(modulation, (-1, self.num_heads, num_bins))), shift
        modulation = ops.reshape(modulation, (-1, self.num_heads, num_bins, 2))
        return scale * (1.0 + modulation[..., 0]), shift + modulation[..., 1]

    def call(self, inputs, mask=None, training=None):
        if sequence_parallel.is_active():  # tokens sharded over devices
            return sequence_parallel.sharded_call(self, inputs, mask)
        _checks.floating_input("AdaptiveSpectralFilter", inputs)
        x = ops.cast(inputs, _checks.island_dtype(self.dtype_policy))
        length = x.shape[1] if x.shape[1] is not None else ops.shape(x)[1]
        if mask is not None:
            token_weight = ops.expand_dims(ops.cast(mask, x.dtype), -1)
            x = x * token_weight
        scale, shift = self._filter(x, mask)
        scale = spectral_ops.resample_spectrum(scale, length, self.filter_length)
        shift = spectral_ops.resample_spectrum(shift, length, self.filter_length)
        y = spectral_core(self.fft_impl, length).spectral_filter(
            x,
            scale,
            shift,
            num_heads=self.num_heads,
            activation="modrelu" if self.variant == "v1" else "gelu",
            epsilon=self.modrelu_epsilon,
        )
        if mask is not None:
            y = y * token_weight
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "max_sequence_length": self.max_sequence_length,
            "filter_bins": self.filter_bins,
            "adaptive": self.adaptive,
            "variant": self.variant,
            "fft_impl": self.fft_impl,
            "modrelu_epsilon": self.modrelu_epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }

    @classmethod
    def from_config(cls, config):
        # Saved before `modrelu_epsilon` existed: the exact modReLU it was trained with.
        config = _checks.legacy_default(config, "modrelu_epsilon", 0.0)
        # Saved before `filter_bins` existed: one filter value per bin of its length.
        length = config.get("max_sequence_length")
        return super().from_config(
            _checks.legacy_default(config, "filter_bins", length and length // 2 + 1)
        )

    @staticmethod
    def count_flops(tally, tokens, channels, arguments):
        """The context mean and MLP, the filter (resampled when the length differs from
        the filter's), rfft + irfft per channel, the filter product, modReLU."""
        from spectralmix import flops

        heads = arguments["num_heads"]
        variant = _checks.choice("variant", arguments.get("variant", "v1"), _checks.VARIANTS)
        filter_length, max_bins = _checks.filter_grid(
            _checks.optional_filter_bins(arguments.get("filter_bins")),
            arguments.get("max_sequence_length") or tokens,
        )
        bins = tokens // 2 + 1
        per_example_filters = 0  # per-bin tensors that depend on the example (to resample)
        if arguments.get("adaptive", True):
            tally.add("elementwise", flops.MEAN_PER_ELEMENT * tokens * channels)
            tally.dense(1, channels, channels)
            tally.add("activation", flops.GELU_PER_ELEMENT * channels)
            outputs_per_bin = 1 if variant == "v1" else 2
            tally.dense(1, channels, heads * max_bins * outputs_per_bin)
            if variant == "v1":
                tally.add("activation", flops.TANH_PER_ELEMENT * heads * max_bins)
                tally.add("spectral_filter", flops.FILTER_FORMATION_V1 * heads * max_bins)
                per_example_filters = 1
            else:
                tally.add("spectral_filter", flops.FILTER_FORMATION_V2 * heads * max_bins)
                per_example_filters = 2
        if tokens != filter_length:
            tally.add(
                "spectral_filter", flops.RESAMPLE_PER_BIN * heads * bins * per_example_filters
            )
        tally.add("fft", 2 * channels * flops.fft_cost(flops.REAL_FFT_COEFFICIENT, tokens))
        tally.add("spectral_filter", flops.FILTER_MULTIPLY_PER_BIN * bins * channels)
        if variant == "v1":
            tally.add("modrelu", flops.MODRELU_PER_BIN * bins * channels)
        else:
            tally.add("modrelu", flops.MAGNITUDE_GELU_PER_BIN * bins * channels)
            tally.add("activation", flops.GELU_PER_ELEMENT * bins * channels)

    @staticmethod
    def count_parameters(channels, arguments):
        """`2·H·K_f + C·C + C + (C + 1)·H·K_f·m` (`m = 1` in v1, `2` in v2), `2·H·K_f` when not
        adaptive, for `C` channels and `K_f` filter bins (see the class docstring)."""
        heads = arguments["num_heads"]
        variant = _checks.choice("variant", arguments.get("variant", "v1"), _checks.VARIANTS)
        _, bins = _checks.filter_grid(
            _checks.optional_filter_bins(arguments.get("filter_bins")),
            arguments["max_sequence_length"],
        )
        count = 2 * heads * bins
        if arguments.get("adaptive", True):
            outputs = heads * bins * (1 if variant == "v1" else 2)
            count += channels * channels + channels + (channels + 1) * outputs
        return count
