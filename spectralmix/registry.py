"""The token-mixer registry: one name for each mixer layer, and what the rest needs to know.

This module imports no framework and no Keras: the command line lists the mixers before it
chooses a backend. The built-in mixers are imported on first use.

A token mixer is a Keras layer that maps `(batch, tokens, channels)` to the same shape with
one call signature, `call(inputs, mask=None, training=None)`, and its own arguments and
`get_config`. `register_token_mixer("name")` makes it available by name everywhere: the
blocks (`MetaFormerBlock(token_mixer="name")`), the model families, the CLI, the harness and
the arena, the FLOP counter, the layout maps and the benchmarks. Nothing else lists mixers.

What the rest of spectralmix needs to know about a mixer is declared on the mixer class
itself, next to its formula; every declaration is optional:

- `causal` (bool, default `False`): no output depends on a later token.
- `model_arguments` (tuple of names, default `()`): which arguments shared by a whole model
  the mixer takes from the block or backbone that builds it: `"num_heads"`,
  `"max_sequence_length"`, `"filter_bins"`, `"kernel_initializer"`, `"bias_initializer"`.
- `count_flops(tally, tokens, channels, arguments)` (static method): adds the mixer's FLOPs
  for one example of `tokens` tokens to a `spectralmix.flops.Tally`; `arguments` are the
  mixer's constructor arguments. Without it `count_flops` of a model using the mixer raises.
- `count_parameters(channels, arguments)` (static method): the mixer's number of weights for
  `channels` channels and its constructor arguments (`max_sequence_length` the length it is
  built for), without building it. Without it `spectralmix.flops.count_parameters` of a
  model using the mixer raises.
- `model_parallel_layout` (dict): variable path suffix (a regular expression, e.g.
  `"query/kernel"`) → axes, with the string `"model"` where the model axis goes. `{}` means
  every weight is replicated. Without it a model-parallel layout map for the mixer raises.
- `token_grid` (bool, default `False`): the mixer arranges the tokens on a square 2-D grid
  (patches or pixels in raster order, optionally after a class token), like `"gfnet_2d"`;
  only tasks whose tokens form such a grid (`Task.token_grid`) enter it.
- `training_bytes_per_example(length, num_heads)` (static method): the memory one training
  example needs beyond what grows linearly with the length (attention's scores); the arena
  plans gradient accumulation from it. Without it the mixer's memory is taken as linear.
- `export_formats` (tuple of `spectralmix.export.FORMATS`, default all): the formats
  `spectralmix.export` may write the mixer to; a mixer that computes an FFT and has no
  `fft_impl="dft"` path declares `("tf_saved_model",)` (ONNX and LiteRT exports hold no FFT),
  and exporting it to another format raises a one-line `ValueError`.

Example:
    >>> import keras
    >>> @register_token_mixer("identity_example")
    ... class IdentityMixer(keras.layers.Layer):
    ...     def call(self, inputs, mask=None, training=None):
    ...         return inputs
    >>> "identity_example" in token_mixer_names()
    True
    >>> unregister_token_mixer("identity_example")
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

#: The arguments a model shares with its mixers (`model_arguments` names some of these).
MODEL_ARGUMENTS = (
    "num_heads",
    "max_sequence_length",
    "filter_bins",
    "kernel_initializer",
    "bias_initializer",
)

#: The built-in token mixers: name -> (module, class), imported on first use. The only list of
#: mixer names in spectralmix; everything else reads the registry.
BUILT_IN = {
    "fftnet": ("spectralmix.layers.adaptive_spectral_filter", "AdaptiveSpectralFilter"),
    "fnet": ("spectralmix.layers.fourier_mixing", "FourierMixing"),
    "attention": ("spectralmix.layers.self_attention", "SelfAttention"),
    "gfnet": ("spectralmix.layers.global_filter", "GlobalFilter"),
    "gfnet_2d": ("spectralmix.layers.global_filter_2d", "GlobalFilter2D"),
    "hyena": ("spectralmix.layers.hyena", "HyenaOperator"),
}

_TOKEN_MIXERS: dict[str, type | None] = dict.fromkeys(BUILT_IN)


def register_token_mixer(name: str):
    """Class decorator: registers a Keras layer class as the token mixer `name`.

    The class is also registered for Keras serialization if it is not already, under its
    module's name as the package (`"my_project.mixers>MyMixer"`: never a spectralmix name, so
    it cannot take the place of a spectralmix layer of the same class name), so blocks that
    hold it save and load wherever that module is imported. Raises `ValueError` for a name already
    taken by another class and `TypeError` for a class that is not a token mixer.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(
            f"A token mixer's name must be a Python identifier string. Received: name={name!r}"
        )

    def register(cls):
        import keras

        _check_mixer_class(name, cls)
        if name in BUILT_IN:
            raise ValueError(f"{name!r} is a built-in token mixer's name; choose another")
        if _TOKEN_MIXERS.get(name, cls) is not cls:
            raise ValueError(
                f"The token mixer name {name!r} is already registered to "
                f"{_TOKEN_MIXERS[name].__qualname__}; unregister it first or choose another "
                f"name. Received: {cls.__qualname__}"
            )
        if keras.saving.get_registered_name(cls) == cls.__name__:
            cls = keras.saving.register_keras_serializable(package=cls.__module__)(cls)
        cls.token_mixer_name = name
        _TOKEN_MIXERS[name] = cls
        return cls

    return register


def unregister_token_mixer(name: str) -> None:
    """Removes `name` from the registry (for tests and interactive sessions)."""
    get_token_mixer(name)
    if name in BUILT_IN:
        raise ValueError(f"{name!r} is a built-in token mixer and stays registered")
    del _TOKEN_MIXERS[name]


def token_mixer_names() -> tuple[str, ...]:
    """The registered token mixers' names, in registration order (built-ins first)."""
    return tuple(_TOKEN_MIXERS)


def get_token_mixer(name: Any) -> type:
    """The layer class registered as `name`; a `ValueError` lists the registered names."""
    if not isinstance(name, str) or name not in _TOKEN_MIXERS:
        raise ValueError(
            f"`token_mixer` must be a registered token mixer, one of {list(_TOKEN_MIXERS)} "
            "(register a new one with spectralmix.layers.register_token_mixer). "
            f"Received: token_mixer={name!r}"
        )
    mixer = _TOKEN_MIXERS[name]
    if mixer is None:  # a built-in, imported now
        module, class_name = BUILT_IN[name]
        mixer = getattr(importlib.import_module(module), class_name)
        mixer.token_mixer_name = name
        _TOKEN_MIXERS[name] = mixer
    return mixer


def takes_argument(mixer: type, argument: str) -> bool:
    """Whether the mixer class's constructor takes `argument` by name."""
    parameters = inspect.signature(mixer.__init__).parameters
    return argument in parameters and parameters[argument].kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def mixer_arguments(
    name: str, token_mixer_kwargs: Mapping[str, Any] | None = None, **shared: Any
) -> dict[str, Any]:
    """The constructor arguments of mixer `name`: the `shared` model arguments it declares in
    `model_arguments` (those not `None`), then `token_mixer_kwargs`, which take precedence."""
    mixer = get_token_mixer(name)
    unknown = set(shared) - set(MODEL_ARGUMENTS)
    if unknown:
        raise TypeError(f"Unknown model arguments {sorted(unknown)}; known: {MODEL_ARGUMENTS}")
    kwargs = token_mixer_kwargs_dict(token_mixer_kwargs)
    declared = getattr(mixer, "model_arguments", ())
    taken = {k: v for k, v in shared.items() if k in declared and v is not None}
    return {**taken, **kwargs}


def token_mixer_kwargs_dict(value: Any) -> dict[str, Any]:
    """`token_mixer_kwargs` checked: `None` or a mapping with string keys, as a new dict."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError(
            "`token_mixer_kwargs` must be a dict of the mixer's constructor arguments. "
            f"Received: token_mixer_kwargs={value!r}"
        )
    return dict(value)


def is_causal(name: str) -> bool:
    """Whether the registered mixer `name` declares itself causal."""
    return bool(getattr(get_token_mixer(name), "causal", False))


def needs_token_grid(name: str) -> bool:
    """Whether the registered mixer `name` arranges its tokens on a 2-D grid (`token_grid`)."""
    return bool(getattr(get_token_mixer(name), "token_grid", False))


def _check_mixer_class(name: str, cls: Any) -> None:
    import keras

    if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
        raise TypeError(
            f"A token mixer must be a keras.layers.Layer subclass. Received for {name!r}: {cls!r}"
        )
    parameters = inspect.signature(cls.call).parameters
    missing = [p for p in ("mask", "training") if p not in parameters]
    if missing:
        raise TypeError(
            f"Token mixer {name!r} ({cls.__qualname__}) must be called as "
            f"`call(inputs, mask=None, training=None)`; its call lacks {missing}"
        )
