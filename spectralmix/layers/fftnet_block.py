"""The FFTNet block: `MetaFormerBlock` configured as in the FFTNet paper's code."""

from __future__ import annotations

import keras

from spectralmix.layers import _checks
from spectralmix.layers.metaformer_block import MetaFormerBlock
from spectralmix.registry import get_token_mixer, takes_argument

#: FFTNetBlock's flat mixer arguments, each passed to a mixer whose constructor takes it.
MIXER_OPTIONS = ("variant", "adaptive", "fft_impl", "modrelu_epsilon", "filter_bins")


@keras.saving.register_keras_serializable(package="spectralmix")
class FFTNetBlock(MetaFormerBlock):
    """The FFTNet residual block: a token mixer, then a GELU MLP, each with a LayerNorm.

    The `MetaFormerBlock` configured with FFTNet's arguments flat, as in the paper's code:
    the spectral filter's own arguments (`max_sequence_length`, `filter_bins`, `variant`,
    `adaptive`, `fft_impl`, `modrelu_epsilon`) are block arguments, and `variant` also sets the norm
    placement. For other mixers, or a mixer's arguments as a dict, use `MetaFormerBlock`.

    `variant="v1"` (the FFTNet paper's code, post-norm):
    `h = LN_1(x + DropPath(Dropout(mixer(x))))`, `y = h + DropPath(MLP(LN_2(h)))`.
    `variant="v2"` (the authors' later code, pre-norm):
    `h = x + DropPath(Dropout(mixer(LN_1(x))))`, `y = h + DropPath(MLP(LN_2(h)))`.
    The MLP is `Dense(mlp_ratio·D) → GELU → Dropout → Dense(D) → Dropout`.

    `token_mixer` picks the mixer so that baselines differ by one argument:
    `"fftnet"` (`AdaptiveSpectralFilter`, O(N log N)), `"fnet"` (`FourierMixing`, O(N log N),
    no weights), `"attention"` (`SelfAttention`, O(N²)) or any registered mixer; each of the
    flat mixer arguments goes to the mixer if its constructor takes it.

    Args:
        num_heads: heads of the mixer (spectral-filter heads or attention heads); must divide
            the channels. Unused by `"fnet"`.
        mlp_ratio: hidden width of the MLP as a multiple of the channels.
        dropout: dropout rate on the mixer output and in the MLP.
        drop_path: stochastic-depth rate of both residual branches.
        token_mixer: a registered token mixer name (`"fftnet"`, `"fnet"`, `"attention"`, ...).
        max_sequence_length: the length the spectral filter is defined for (`"fftnet"` only;
            see `AdaptiveSpectralFilter`). Defaults to the length of the first input.
        variant: `"v1"` (default) or `"v2"`; sets the norm placement and, for `"fftnet"`,
            the filter form.
        adaptive: whether the spectral filter is modulated by the mean token (`"fftnet"`).
        fft_impl: `"fft"`, `"dft"` or `"auto"`: how the `"fftnet"` and `"fnet"` mixers compute
            their transforms (see `AdaptiveSpectralFilter`). Unused by `"attention"`.
        modrelu_epsilon: the spectral filter's modReLU floor (`"fftnet"`, v1; see
            `AdaptiveSpectralFilter`): `1e-3` as the authors, `0` for the exact form.
        filter_bins: the number of frequency bins the spectral filter is defined on
            (`"fftnet"`, `"gfnet"`; see `AdaptiveSpectralFilter`). Defaults to
            `min(max_sequence_length // 2 + 1, 2049)`.
        layer_norm_epsilon: epsilon of both LayerNorms (PyTorch's default, as the authors).
        kernel_initializer: initializer of the dense kernels.
        bias_initializer: initializer of the dense biases.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape:
        `(batch, sequence_length, channels)`.

    Output shape:
        Same as the input.

    Call arguments:
        inputs: the token features.
        mask: optional boolean `(batch, sequence_length)` padding mask; padded tokens never
            change the outputs at real positions, and padded outputs are zero.
        training: whether dropout and drop path are active.

    Examples:
        >>> import numpy as np
        >>> block = FFTNetBlock(num_heads=4, mlp_ratio=2.0)
        >>> y = block(np.random.rand(2, 16, 32).astype("float32"))
        >>> tuple(y.shape)
        (2, 16, 32)
        >>> baseline = FFTNetBlock(num_heads=4, token_mixer="attention")

    Reference:
        Fein-Ashley et al., "The FFT Strikes Back: An Efficient Alternative to
        Self-Attention", arXiv:2502.18394.
    """

    def __init__(
        self,
        num_heads,
        mlp_ratio=4.0,
        dropout=0.0,
        drop_path=0.0,
        token_mixer="fftnet",
        max_sequence_length=None,
        variant="v1",
        adaptive=True,
        fft_impl="fft",
        modrelu_epsilon=_checks.MODRELU_EPSILON,
        filter_bins=None,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.max_sequence_length = _checks.optional_positive_int(
            "max_sequence_length", max_sequence_length
        )
        self.variant = _checks.choice("variant", variant, _checks.VARIANTS)
        self.adaptive = _checks.boolean("adaptive", adaptive)
        self.fft_impl = _checks.choice("fft_impl", fft_impl, _checks.FFT_IMPLS)
        self.modrelu_epsilon = _checks.non_negative_float("modrelu_epsilon", modrelu_epsilon)
        self.filter_bins = _checks.optional_filter_bins(filter_bins)
        mixer = get_token_mixer(token_mixer)
        model_arguments = getattr(mixer, "model_arguments", ())
        shared = {"num_heads": self.num_heads, "max_sequence_length": self.max_sequence_length}
        mixer_kwargs = {k: v for k, v in shared.items() if k in model_arguments and v is not None}
        for option in MIXER_OPTIONS:
            if takes_argument(mixer, option):
                mixer_kwargs[option] = getattr(self, option)
        super().__init__(
            token_mixer=token_mixer,
            token_mixer_kwargs=mixer_kwargs,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            drop_path=drop_path,
            norm_first=self.variant == "v2",
            layer_norm_epsilon=layer_norm_epsilon,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )

    def build(self, input_shape):
        takes_heads = "num_heads" in self.token_mixer_kwargs
        _checks.sequence_shape("FFTNetBlock", input_shape, self.num_heads if takes_heads else None)
        super().build(input_shape)
        # The filter's length defaults to the first input's: keep it in the config.
        self.max_sequence_length = getattr(
            self.mixer, "max_sequence_length", self.max_sequence_length
        )
        self.filter_bins = getattr(self.mixer, "filter_bins", self.filter_bins)

    def get_config(self):
        config = super().get_config()
        for key in ("token_mixer_kwargs", "norm_first"):
            config.pop(key)
        return {
            **config,
            "num_heads": self.num_heads,
            "max_sequence_length": self.max_sequence_length,
            "variant": self.variant,
            "adaptive": self.adaptive,
            "fft_impl": self.fft_impl,
            "modrelu_epsilon": self.modrelu_epsilon,
            "filter_bins": self.filter_bins,
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
