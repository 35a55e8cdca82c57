"""The FFTNet residual block, with attention and FNet mixers one argument away."""

from __future__ import annotations

import keras
from keras import ops

from spectralmix.layers import _checks
from spectralmix.layers.adaptive_spectral_filter import AdaptiveSpectralFilter
from spectralmix.layers.drop_path import DropPath
from spectralmix.layers.fourier_mixing import FourierMixing

TOKEN_MIXERS = ("fftnet", "fnet", "attention")


@keras.saving.register_keras_serializable(package="spectralmix")
class FFTNetBlock(keras.layers.Layer):
    """A residual block: a token mixer, then a GELU MLP, each with a LayerNorm.

    `variant="v1"` (the FFTNet paper's code, post-norm):
    `h = LN_1(x + DropPath(Dropout(mixer(x))))`, `y = h + DropPath(MLP(LN_2(h)))`.
    `variant="v2"` (the authors' later code, pre-norm):
    `h = x + DropPath(Dropout(mixer(LN_1(x))))`, `y = h + DropPath(MLP(LN_2(h)))`.
    The MLP is `Dense(mlp_ratio·D) → GELU → Dropout → Dense(D) → Dropout`.

    `token_mixer` picks the mixer so that baselines differ by one argument:
    `"fftnet"` (`AdaptiveSpectralFilter`, O(N log N)), `"fnet"` (`FourierMixing`, O(N log N),
    no weights) or `"attention"` (`keras.layers.MultiHeadAttention`, O(N²)).

    Args:
        num_heads: heads of the mixer (spectral-filter heads or attention heads); must divide
            the channels. Unused by `"fnet"`.
        mlp_ratio: hidden width of the MLP as a multiple of the channels.
        dropout: dropout rate on the mixer output and in the MLP.
        drop_path: stochastic-depth rate of both residual branches.
        token_mixer: `"fftnet"`, `"fnet"` or `"attention"`.
        max_sequence_length: the length the spectral filter is defined for (`"fftnet"` only;
            see `AdaptiveSpectralFilter`). Defaults to the length of the first input.
        variant: `"v1"` (default) or `"v2"`; sets the norm placement and, for `"fftnet"`,
            the filter form.
        adaptive: whether the spectral filter is modulated by the mean token (`"fftnet"`).
        fft_impl: `"fft"`, `"dft"` or `"auto"`: how the `"fftnet"` and `"fnet"` mixers compute
            their transforms (see `AdaptiveSpectralFilter`). Unused by `"attention"`.
        modrelu_epsilon: the spectral filter's modReLU floor (`"fftnet"`, v1; see
            `AdaptiveSpectralFilter`): `1e-3` as the authors, `0` for the exact form.
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
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.mlp_ratio = _checks.positive_float("mlp_ratio", mlp_ratio)
        self.dropout = _checks.rate("dropout", dropout)
        self.drop_path = _checks.rate("drop_path", drop_path)
        self.token_mixer = _checks.choice("token_mixer", token_mixer, TOKEN_MIXERS)
        self.max_sequence_length = _checks.optional_positive_int(
            "max_sequence_length", max_sequence_length
        )
        self.variant = _checks.choice("variant", variant, _checks.VARIANTS)
        self.adaptive = _checks.boolean("adaptive", adaptive)
        self.fft_impl = _checks.choice("fft_impl", fft_impl, _checks.FFT_IMPLS)
        self.modrelu_epsilon = _checks.non_negative_float("modrelu_epsilon", modrelu_epsilon)
        self.layer_norm_epsilon = _checks.positive_float("layer_norm_epsilon", layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def _dense(self, units, name, activation=None):
        return keras.layers.Dense(
            units,
            activation=activation,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        heads = None if self.token_mixer == "fnet" else self.num_heads
        shape = _checks.sequence_shape("FFTNetBlock", input_shape, heads)
        channels = shape[-1]
        if self.token_mixer == "fftnet":
            self.mixer = AdaptiveSpectralFilter(
                self.num_heads,
                max_sequence_length=self.max_sequence_length,
                adaptive=self.adaptive,
                variant=self.variant,
                fft_impl=self.fft_impl,
                modrelu_epsilon=self.modrelu_epsilon,
                kernel_initializer=self.kernel_initializer,
                bias_initializer=self.bias_initializer,
                dtype=self.dtype_policy,
                name="token_mixer",
            )
            self.mixer.build(shape)
            self.max_sequence_length = self.mixer.max_sequence_length
        elif self.token_mixer == "fnet":
            self.mixer = FourierMixing(
                fft_impl=self.fft_impl, dtype=self.dtype_policy, name="token_mixer"
            )
            self.mixer.build(shape)
        else:
            self.mixer = keras.layers.MultiHeadAttention(
                self.num_heads,
                key_dim=channels // self.num_heads,
                kernel_initializer=self.kernel_initializer,
                bias_initializer=self.bias_initializer,
                dtype=self.dtype_policy,
                name="token_mixer",
            )
            self.mixer.build(shape, shape)
        self.mixer_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.norm1 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="norm1"
        )
        self.norm1.build(shape)
        self.norm2 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="norm2"
        )
        self.norm2.build(shape)
        hidden = max(1, round(channels * self.mlp_ratio))
        self.mlp_dense1 = self._dense(hidden, "mlp_dense1", activation="gelu")
        self.mlp_dense1.build(shape)
        self.mlp_dense2 = self._dense(channels, "mlp_dense2")
        self.mlp_dense2.build((*shape[:-1], hidden))
        self.mlp_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.drop_path_mixer = DropPath(self.drop_path, dtype=self.dtype_policy)
        self.drop_path_mlp = DropPath(self.drop_path, dtype=self.dtype_policy)

    def _mix(self, x, mask, training):
        if self.token_mixer == "attention":
            return self.mixer(x, x, value_mask=mask, training=training)
        return self.mixer(x, mask=mask)

    def _mlp(self, x, training):
        h = self.mlp_dropout(self.mlp_dense1(x), training=training)
        return self.mlp_dropout(self.mlp_dense2(h), training=training)

    def call(self, inputs, mask=None, training=None):
        _checks.floating_input("FFTNetBlock", inputs)
        x = inputs
        if mask is not None:
            token_weight = ops.expand_dims(ops.cast(mask, x.dtype), -1)
            x = x * token_weight
        if self.variant == "v1":
            mixed = self.mixer_dropout(self._mix(x, mask, training), training=training)
            h = self.norm1(x + self.drop_path_mixer(mixed, training=training))
        else:
            mixed = self.mixer_dropout(self._mix(self.norm1(x), mask, training), training=training)
            h = x + self.drop_path_mixer(mixed, training=training)
        y = h + self.drop_path_mlp(self._mlp(self.norm2(h), training), training=training)
        if mask is not None:
            y = y * token_weight
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "dropout": self.dropout,
            "drop_path": self.drop_path,
            "token_mixer": self.token_mixer,
            "max_sequence_length": self.max_sequence_length,
            "variant": self.variant,
            "adaptive": self.adaptive,
            "fft_impl": self.fft_impl,
            "modrelu_epsilon": self.modrelu_epsilon,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }

    @classmethod
    def from_config(cls, config):
        # Saved before `modrelu_epsilon` existed: the exact modReLU it was trained with.
        return super().from_config(_checks.legacy_default(config, "modrelu_epsilon", 0.0))
