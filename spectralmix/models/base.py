"""What the model families share: the encoder stack and config handling of functional models."""

from __future__ import annotations

import keras
import numpy as np

from spectralmix.layers import FFTNetBlock, _checks
from spectralmix.layers.fftnet_block import TOKEN_MIXERS
from spectralmix.models.presets import PresetMixin


def check_encoder_arguments(hidden_dim, num_layers, num_heads, token_mixer, drop_path):
    """Validates the encoder arguments both families take; returns them normalised."""
    hidden_dim = _checks.positive_int("hidden_dim", hidden_dim)
    num_layers = _checks.positive_int("num_layers", num_layers)
    num_heads = _checks.positive_int("num_heads", num_heads)
    token_mixer = _checks.choice("token_mixer", token_mixer, TOKEN_MIXERS)
    if token_mixer != "fnet" and hidden_dim % num_heads:
        raise ValueError(
            "`num_heads` must divide `hidden_dim`. "
            f"Received: num_heads={num_heads}, hidden_dim={hidden_dim}"
        )
    return hidden_dim, num_layers, num_heads, token_mixer, _checks.rate("drop_path", drop_path)


def encoder(
    x,
    *,
    num_tokens,
    num_layers,
    num_heads,
    mlp_ratio,
    dropout,
    drop_path,
    token_mixer,
    variant,
    layer_norm_epsilon,
    dtype,
    fft_impl="fft",
    modrelu_epsilon=_checks.MODRELU_EPSILON,
):
    """`num_layers` FFTNet blocks (drop path rising linearly from 0) and a final LayerNorm;
    the spectral filters are defined for `num_tokens` tokens."""
    for i, rate in enumerate(np.linspace(0.0, drop_path, num_layers)):
        x = FFTNetBlock(
            num_heads,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            drop_path=float(rate),
            token_mixer=token_mixer,
            max_sequence_length=num_tokens,
            variant=variant,
            fft_impl=fft_impl,
            modrelu_epsilon=modrelu_epsilon,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=dtype,
            name=f"block_{i}",
        )(x)
    return keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
    )(x)


class ConfiguredModel(PresetMixin, keras.Model):
    """A functional model built in `__init__` whose config is its constructor arguments.

    `_config_keys` are read from the model, `_backbone_keys` from its `backbone` (task models
    take the backbone's arguments directly).
    """

    _config_keys: tuple[str, ...] = ()
    _backbone_keys: tuple[str, ...] = ()

    def _store_config(self, arguments: dict) -> None:
        """Keeps each validated constructor argument named in `_config_keys` as an attribute."""
        for key in self._config_keys:
            setattr(self, key, arguments[key])

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }
        config.update({k: getattr(self, k) for k in self._config_keys})
        config.update({k: getattr(self.backbone, k) for k in self._backbone_keys})
        return config

    @classmethod
    def from_config(cls, config):
        if "modrelu_epsilon" in cls._config_keys + cls._backbone_keys:
            # Saved before `modrelu_epsilon` existed: the exact modReLU it was trained with.
            config = _checks.legacy_default(config, "modrelu_epsilon", 0.0)
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

    @classmethod
    def _pop_backbone_kwargs(cls, kwargs: dict) -> dict:
        return {k: kwargs.pop(k) for k in cls._backbone_keys if k in kwargs}
