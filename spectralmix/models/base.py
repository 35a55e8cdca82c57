"""What the model families share: keras-hub's shape of a backbone and the task models on it.

A `Backbone` is a functional model built in `__init__` whose config is its constructor
arguments, kept as one attribute each. A `Task` takes a backbone instance
(`FFTNetClassifier(backbone=..., num_classes=...)`) and serializes it nested, as keras-hub's
tasks do. Presets (directories or registered names) load through `from_preset`.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import keras
import numpy as np

from spectralmix.layers import MetaFormerBlock, _checks
from spectralmix.models import presets
from spectralmix.registry import (
    get_token_mixer,
    mixer_arguments,
    takes_argument,
    token_mixer_kwargs_dict,
)

#: The flat mixer arguments of spectralmix 0.1 configs (now in `token_mixer_kwargs`).
LEGACY_MIXER_KEYS = ("variant", "fft_impl", "modrelu_epsilon", "adaptive")
#: The encoder arguments every backbone takes (and keeps as attributes), after its own.
ENCODER_KEYS = (
    "hidden_dim",
    "num_layers",
    "num_heads",
    "mlp_ratio",
    "dropout",
    "drop_path",
    "token_mixer",
    "token_mixer_kwargs",
    "norm_first",
    "layer_norm_epsilon",
)


def check_encoder_arguments(hidden_dim, num_layers, num_heads, token_mixer, token_mixer_kwargs):
    """Validates the encoder arguments both families take; returns them normalised."""
    hidden_dim = _checks.positive_int("hidden_dim", hidden_dim)
    num_layers = _checks.positive_int("num_layers", num_layers)
    num_heads = _checks.positive_int("num_heads", num_heads)
    mixer = get_token_mixer(token_mixer)
    token_mixer_kwargs = token_mixer_kwargs_dict(token_mixer_kwargs)
    heads = mixer_arguments(token_mixer, token_mixer_kwargs, num_heads=num_heads).get("num_heads")
    if heads is not None and hidden_dim % heads:
        raise ValueError(
            "`num_heads` must divide `hidden_dim`. "
            f"Received: num_heads={heads}, hidden_dim={hidden_dim}"
        )
    return hidden_dim, num_layers, num_heads, mixer.token_mixer_name, token_mixer_kwargs


def check_block_arguments(mlp_ratio, dropout, drop_path, norm_first):
    """Validates the per-block arguments both families take; returns them normalised."""
    return (
        _checks.positive_float("mlp_ratio", mlp_ratio),
        _checks.rate("dropout", dropout),
        _checks.rate("drop_path", drop_path),
        _checks.boolean("norm_first", norm_first),
    )


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
    token_mixer_kwargs,
    norm_first,
    layer_norm_epsilon,
    dtype,
    filter_bins=None,
    remat=False,
):
    """`num_layers` `MetaFormerBlock`s (drop path rising linearly from 0) and a final
    LayerNorm; mixers that take a length are defined for `num_tokens` tokens, and those that
    take `filter_bins` get it unless it is `None`."""
    kwargs = mixer_arguments(
        token_mixer,
        token_mixer_kwargs,
        num_heads=num_heads,
        max_sequence_length=num_tokens,
        filter_bins=filter_bins,
    )
    for i, rate in enumerate(np.linspace(0.0, drop_path, num_layers)):
        x = MetaFormerBlock(
            token_mixer,
            kwargs,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            drop_path=float(rate),
            norm_first=norm_first,
            layer_norm_epsilon=layer_norm_epsilon,
            remat=remat,
            dtype=dtype,
            name=f"block_{i}",
        )(x)
    return keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
    )(x)


def is_legacy_config(config: dict) -> bool:
    """Whether `config` is a spectralmix 0.1 model config (flat mixer arguments)."""
    return "token_mixer_kwargs" not in config and any(k in config for k in LEGACY_MIXER_KEYS)


def upgrade_config(config: dict) -> dict:
    """A spectralmix 0.1 backbone config (flat `variant`, `fft_impl`, `modrelu_epsilon`)
    as today's: those go to `token_mixer_kwargs` where the mixer takes them, and
    `variant="v2"` also sets `norm_first=True`. A config saved before `modrelu_epsilon`
    existed gets the exact modReLU (`0`) it was trained with."""
    config = dict(config)
    if not is_legacy_config(config):
        return config
    config = _checks.legacy_default(config, "modrelu_epsilon", 0.0)
    mixer = get_token_mixer(config.get("token_mixer", "fftnet"))
    legacy = {k: config.pop(k) for k in LEGACY_MIXER_KEYS if k in config}
    config["token_mixer_kwargs"] = {k: v for k, v in legacy.items() if takes_argument(mixer, k)}
    config["norm_first"] = legacy.get("variant", "v1") == "v2"
    return config


def _legacy_error(cls: type) -> ValueError:
    return ValueError(
        f"This {cls.__name__} config was saved by spectralmix 0.1 (flat mixer arguments and "
        "the old block layout); convert the saved file once with "
        "`spectralmix.models.convert_legacy_file(old_path, new_path)`"
    )


def _model_base() -> type:
    """keras-hub's `Backbone` where the `keras-hub` extra is installed, else `keras.Model`.

    `keras_hub.models.Backbone.from_preset(dir)` loads only subclasses of its own class, so
    with keras-hub installed spectralmix's backbones are such subclasses (importing keras-hub
    imports TensorFlow, whatever the backend); without it nothing of keras-hub is needed.
    """
    if importlib.util.find_spec("keras_hub") is None:
        return keras.Model
    from keras_hub.models import Backbone as KerasHubBackbone

    return KerasHubBackbone


def _base_config(model: keras.Model) -> dict[str, Any]:
    return {
        "name": model.name,
        "trainable": model.trainable,
        "dtype": keras.dtype_policies.serialize(model.dtype_policy),
    }


def _deserialized_dtype(config: dict[str, Any]) -> dict[str, Any]:
    config = dict(config)
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
    return config


class Backbone(presets.PresetMixin, _model_base()):
    """A functional backbone whose config is its constructor arguments.

    Subclasses set one attribute per constructor argument and list them in `config_keys`.
    With keras-hub installed it is also a `keras_hub.models.Backbone`.
    """

    config_keys: tuple[str, ...] = ()

    def get_config(self):
        return {**_base_config(self), **{key: getattr(self, key) for key in self.config_keys}}

    @classmethod
    def from_config(cls, config):
        if is_legacy_config(config):
            raise _legacy_error(cls)
        return cls(**_deserialized_dtype(config))

    @property
    def token_mixer_arguments(self) -> dict[str, Any]:
        """The constructor arguments every block's mixer gets."""
        return self.get_layer("block_0").token_mixer_kwargs


class Task(presets.PresetMixin, keras.Model):
    """A model on a backbone instance (`backbone=`), serialized with the backbone nested."""

    backbone_class: type = Backbone
    config_keys: tuple[str, ...] = ()

    def get_config(self):
        return {
            **_base_config(self),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            **{key: getattr(self, key) for key in self.config_keys},
        }

    @classmethod
    def from_config(cls, config):
        if "backbone" not in config and is_legacy_config(config):
            raise _legacy_error(cls)
        config = _deserialized_dtype(config)
        if isinstance(config.get("backbone"), dict):
            config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


#: The keyword arguments a backbone or task passes on to `keras.Model` (which would silently
#: drop any other).
MODEL_KWARGS = ("name", "trainable")


def check_model_kwargs(cls: type, kwargs: dict[str, Any]) -> None:
    """Refuses keyword arguments `cls` does not take, naming them; spectralmix 0.1's flat
    mixer arguments get the hint where they go now."""
    unknown = sorted(set(kwargs) - set(MODEL_KWARGS))
    if not unknown:
        return
    legacy = [k for k in unknown if k in LEGACY_MIXER_KEYS]
    hint = (
        f"; {legacy} are the mixer's arguments now: token_mixer_kwargs="
        + "{"
        + ", ".join(f"{k!r}: ..." for k in legacy)
        + "}"
        + (' (and norm_first=True for variant="v2")' if "variant" in legacy else "")
        if legacy
        else ""
    )
    raise TypeError(
        f"{cls.__name__} got unexpected keyword arguments {unknown}{hint}. "
        f"Received: {', '.join(f'{k}={kwargs[k]!r}' for k in unknown)}"
    )


def check_backbone(backbone: Any, expected: type) -> None:
    if not isinstance(backbone, expected):
        raise TypeError(
            f"`backbone` must be a {expected.__name__} instance (e.g. "
            f"{expected.__name__}.from_preset(...)). Received: backbone={backbone!r}"
        )
