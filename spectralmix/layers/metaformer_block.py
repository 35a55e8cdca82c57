"""The residual block around any registered token mixer (a MetaFormer block)."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from spectralmix.layers import _checks
from spectralmix.layers.drop_path import DropPath
from spectralmix.registry import get_token_mixer, mixer_arguments, token_mixer_kwargs_dict

#: `remat` modes of `MetaFormerBlock` (`True` is `"full"`, `False` none).
REMAT_MODES = ("full", "mixer", "mlp")
#: With `remat` on the MLP, the tokens (batch × sequence, flattened) it runs over at a time on
#: JAX and PyTorch: its `mlp_ratio · D`-wide hidden activations exist for this many at once.
REMAT_CHUNK_TOKENS = 4096


def remat_mode(value) -> bool | str:
    """`remat` checked: `False`, or one of `REMAT_MODES` (`True` → `"full"`)."""
    if value is None or value is False:
        return False
    if value is True:
        return "full"
    if isinstance(value, str) and value in REMAT_MODES:
        return value
    raise ValueError(f"`remat` must be a bool or one of {REMAT_MODES}. Received: remat={value!r}")


@keras.saving.register_keras_serializable(package="spectralmix")
class MetaFormerBlock(keras.layers.Layer):
    """A residual block: a token mixer, then a GELU MLP, each with a LayerNorm.

    Post-norm (`norm_first=False`, the FFTNet paper's code):
    `h = LN_1(x + DropPath(Dropout(mixer(x))))`, `y = h + DropPath(MLP(LN_2(h)))`.
    Pre-norm (`norm_first=True`, the usual Transformer and the FFTNet authors' later code):
    `h = x + DropPath(Dropout(mixer(LN_1(x))))`, `y = h + DropPath(MLP(LN_2(h)))`.
    The MLP is `Dense(mlp_ratio·D) → GELU → Dropout → Dense(D) → Dropout`.

    The block knows its mixer only through the mixer's call signature,
    `mixer(x, mask=..., training=...)`: with `token_mixer="attention"` it is a Transformer
    block, with `"fftnet"` an FFTNet block, with `"fnet"` an FNet block, and any mixer
    registered with `spectralmix.layers.register_token_mixer` works the same way.

    Args:
        token_mixer: a registered mixer name (`spectralmix.layers.token_mixer_names()`), or a
            token-mixer layer instance (saved with the block through its own config).
        token_mixer_kwargs: the mixer's own constructor arguments (with a name), e.g.
            `{"num_heads": 8}`. The block adds its initializers where the mixer declares it
            takes them (`model_arguments`).
        mlp_ratio: hidden width of the MLP as a multiple of the channels.
        dropout: dropout rate on the mixer output and in the MLP.
        drop_path: stochastic-depth rate of both residual branches.
        norm_first: pre-norm (`True`) or post-norm (`False`, the FFTNet paper's code).
        layer_norm_epsilon: epsilon of both LayerNorms (PyTorch's default, as the authors).
        kernel_initializer: initializer of the dense kernels.
        bias_initializer: initializer of the dense biases.
        remat: rematerialisation (gradient checkpointing) through `keras.remat`, for long
            sequences: `False` (default), `"mixer"` (the token mixer, with the LayerNorm before
            it in pre-norm), `"mlp"` (the second LayerNorm and the MLP, run over chunks of
            `REMAT_CHUNK_TOKENS` tokens on JAX and PyTorch: the MLP is token-local) or
            `True` / `"full"` (both). Without drop path in training, `"mlp"` covers everything
            after the mixer (`LN_1` in post-norm, the residuals, `LN_2`, the MLP), all
            token-local, so the chunks keep only `x + mixer branch`. A rematerialised part keeps
            only its input for the backward pass and recomputes the rest there: less memory,
            about one more forward in time. The outputs and gradients are those without it.
            (XLA on CPU merges a recomputed mixer with the forward's, so there only the
            chunked part saves memory; the spectral core keeps just its spectrum either way.)
            On TensorFlow
            `keras.remat` is `tf.recompute_grad` and the MLP is not chunked. Not with dropout
            inside a rematerialised part (the MLP's `dropout`, an attention mixer's own
            dropout): Keras's dropout would draw a new mask on the recompute.
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
        >>> block = MetaFormerBlock("fftnet", {"num_heads": 4}, mlp_ratio=2.0)
        >>> tuple(block(np.random.rand(2, 16, 32).astype("float32")).shape)
        (2, 16, 32)
        >>> transformer = MetaFormerBlock("attention", {"num_heads": 4}, norm_first=True)

    Reference:
        Yu et al., "MetaFormer Is Actually What You Need for Vision", CVPR 2022;
        Fein-Ashley et al., "The FFT Strikes Back", arXiv:2502.18394.
    """

    def __init__(
        self,
        token_mixer="fftnet",
        token_mixer_kwargs=None,
        mlp_ratio=4.0,
        dropout=0.0,
        drop_path=0.0,
        norm_first=False,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        remat=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(token_mixer, dict):
            token_mixer = keras.saving.deserialize_keras_object(token_mixer)
        if isinstance(token_mixer, keras.layers.Layer):
            self.mixer_layer = token_mixer
            self.token_mixer = token_mixer
        else:
            self.mixer_layer = None
            self.token_mixer = get_token_mixer(token_mixer).token_mixer_name
        self.token_mixer_kwargs = token_mixer_kwargs_dict(token_mixer_kwargs)
        if self.mixer_layer is not None and self.token_mixer_kwargs:
            raise ValueError(
                "`token_mixer_kwargs` configures a mixer given by name; a mixer layer instance "
                f"carries its own arguments. Received: token_mixer_kwargs={token_mixer_kwargs!r}"
            )
        self.mlp_ratio = _checks.positive_float("mlp_ratio", mlp_ratio)
        self.dropout = _checks.rate("dropout", dropout)
        self.drop_path = _checks.rate("drop_path", drop_path)
        self.norm_first = _checks.boolean("norm_first", norm_first)
        self.layer_norm_epsilon = _checks.positive_float("layer_norm_epsilon", layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.remat = remat_mode(remat)
        if self.remat in ("full", "mlp") and self.dropout > 0:
            raise ValueError(
                "`remat` on the MLP needs `dropout=0`: Keras's dropout draws a new mask when "
                f"the MLP is recomputed. Received: remat={remat!r}, dropout={dropout!r}"
            )
        self.supports_masking = True

    def _make_mixer(self) -> keras.layers.Layer:
        if self.mixer_layer is not None:
            return self.mixer_layer
        arguments = mixer_arguments(
            self.token_mixer,
            self.token_mixer_kwargs,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
        )
        mixer_class = get_token_mixer(self.token_mixer)
        try:
            return mixer_class(**arguments, dtype=self.dtype_policy, name="token_mixer")
        except (TypeError, ValueError) as error:  # Keras refuses unknown ones with a ValueError
            raise type(error)(
                f"Token mixer {self.token_mixer!r} ({mixer_class.__name__}) rejected its "
                f"arguments {sorted(arguments)}: {error}"
            ) from None

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
        shape = _checks.sequence_shape(type(self).__name__, input_shape)
        channels = shape[-1]
        # The attribute is `mixer`: saved weights are found under that name.
        self.mixer = self._make_mixer()
        if not self.mixer.built:
            self.mixer.build(shape)
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
        mixer_dropout = getattr(self.mixer, "dropout", 0.0)
        if self.remat in ("full", "mixer") and isinstance(mixer_dropout, float) and mixer_dropout:
            raise ValueError(
                "`remat` on the token mixer needs a mixer without dropout: Keras's dropout "
                f"draws a new mask when the mixer is recomputed. Received: remat={self.remat!r}, "
                f"the mixer's dropout={mixer_dropout!r}"
            )

    def _mlp(self, x, training):
        h = self.mlp_dropout(self.mlp_dense1(x), training=training)
        return self.mlp_dropout(self.mlp_dense2(h), training=training)

    def _mixer_branch(self, x, mask, training):
        """The mixer on `x` (after `norm1` in pre-norm), before dropout and drop path."""
        mixer_input = self.norm1(x) if self.norm_first else x
        return self.mixer(mixer_input, mask=mask, training=training)

    def _mlp_branch(self, h, training):
        """`MLP(LN_2(h))`; token-local."""
        return self._mlp(self.norm2(h), training)

    def _token_local_tail(self, t, training):
        """`h + MLP(LN_2(h))` with `h = t` (pre-norm) or `h = LN_1(t)` (post-norm), where
        `t = x + mixer branch`: everything after the mixer, token-local (no drop path)."""
        h = t if self.norm_first else self.norm1(t)
        return h + self._mlp_branch(h, training)

    def _remat_chunks(self, function, t):
        """`function` (token-local) under `keras.remat`, over chunks of `REMAT_CHUNK_TOKENS`
        tokens where the backend and the static shape allow (JAX, PyTorch): its backward
        recomputes one chunk at a time inside the loop, so no full-size intermediate of
        `function` is kept (nor, on XLA, scheduled early or merged with the forward's)."""
        branch = keras.remat(function)
        shape = tuple(t.shape)
        if keras.backend.backend() not in ("jax", "torch") or None in shape:
            return branch(t)
        rows, channels = math.prod(shape[:-1]), shape[-1]
        if rows <= REMAT_CHUNK_TOKENS:
            return branch(t)
        flat = ops.reshape(t, (rows, channels))
        padding = -rows % REMAT_CHUNK_TOKENS
        if padding:
            flat = ops.pad(flat, ((0, padding), (0, 0)))
        chunks = ops.reshape(flat, (-1, REMAT_CHUNK_TOKENS, channels))
        out = ops.reshape(ops.map(branch, chunks), (-1, channels))
        if padding:
            out = out[:rows]
        return ops.reshape(out, shape)

    def call(self, inputs, mask=None, training=None):
        _checks.floating_input(type(self).__name__, inputs)
        x = inputs
        if mask is not None:
            token_weight = ops.expand_dims(ops.cast(mask, x.dtype), -1)
            x = x * token_weight
        # Rematerialised parts take their tensors as arguments and close over `mask` and
        # `training`: Keras's own remat of a layer call would trace `training` (and fail).
        if self.remat in ("full", "mixer"):
            mixed = keras.remat(lambda t: self._mixer_branch(t, mask, training))(x)
        else:
            mixed = self._mixer_branch(x, mask, training)
        mixed = self.drop_path_mixer(
            self.mixer_dropout(mixed, training=training), training=training
        )
        t = x + mixed
        if self.remat in ("full", "mlp") and (self.drop_path == 0.0 or not training):
            # The whole token-local tail (LN_1 in post-norm, the residual, LN_2, the MLP) in
            # one chunked remat: only `t` is kept for the backward, not LN_1's intermediates.
            y = self._remat_chunks(lambda c: self._token_local_tail(c, training), t)
        else:
            h = t if self.norm_first else self.norm1(t)
            if self.remat in ("full", "mlp"):
                branch = self._remat_chunks(lambda c: self._mlp_branch(c, training), h)
            else:
                branch = self._mlp_branch(h, training)
            y = h + self.drop_path_mlp(branch, training=training)
        if mask is not None:
            y = y * token_weight
        return y

    def init_cache(self, batch_size, max_length):
        """The mixer's cache for generating up to `max_length` tokens (the LayerNorms and the
        MLP act on each token alone and keep nothing); see `call_with_cache`."""
        return self._cached_mixer("init_cache").init_cache(batch_size, max_length)

    def call_with_cache(self, inputs, cache, cache_index):
        """The block at positions `cache_index .. cache_index + T - 1`, as `call` computes it
        there in inference (no dropout, no drop path), the mixer reading earlier positions from
        `cache` (`init_cache`). Returns `(outputs (batch, T, channels), new_cache)`."""
        mixer = self._cached_mixer("call_with_cache")
        _checks.floating_input(type(self).__name__, inputs)
        x = ops.cast(ops.convert_to_tensor(inputs), self.compute_dtype)  # as `__call__` does
        mixer_input = self.norm1(x) if self.norm_first else x
        mixed, cache = mixer.call_with_cache(mixer_input, cache, cache_index)
        h = x + mixed if self.norm_first else self.norm1(x + mixed)
        return h + self._mlp(self.norm2(h), training=False), cache

    def _cached_mixer(self, method) -> keras.layers.Layer:
        if not self.built:
            raise ValueError(
                f"{type(self).__name__}.{method} needs the block built first: call it once or "
                "build it"
            )
        mixer = self.mixer
        name = getattr(mixer, "token_mixer_name", type(mixer).__name__)
        if not getattr(mixer, "causal", False):
            raise ValueError(
                f"Token mixer {name!r} ({type(mixer).__name__}) is not causal, so it cannot "
                "generate token by token (a causal mixer has causal=True)"
            )
        if not callable(getattr(mixer, "call_with_cache", None)):
            raise ValueError(
                f"Token mixer {name!r} ({type(mixer).__name__}) has no call_with_cache, so it "
                "cannot generate token by token"
            )
        return mixer

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _mixer_config(self) -> dict[str, Any]:
        if self.mixer_layer is not None:
            return {
                "token_mixer": keras.saving.serialize_keras_object(self.mixer_layer),
                "token_mixer_kwargs": None,
            }
        return {"token_mixer": self.token_mixer, "token_mixer_kwargs": self.token_mixer_kwargs}

    def get_config(self):
        return {
            **super().get_config(),
            **self._mixer_config(),
            "mlp_ratio": self.mlp_ratio,
            "dropout": self.dropout,
            "drop_path": self.drop_path,
            "norm_first": self.norm_first,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "remat": self.remat,
        }
