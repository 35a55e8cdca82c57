"""The preset registry: named model configurations, shared by every model family.

A preset is a plain dict `{"class": name, "config": {...}, "metadata": {...}}`, optionally with
`"weights": "FILE.weights.h5"`, a file shipped inside the package next to the family's presets
(`spectralmix/models/<family>/weights/`). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

_PRESETS: dict[str, dict[str, Any]] = {}


def register_presets(presets: dict[str, dict[str, Any]]) -> None:
    for name, preset in presets.items():
        if name in _PRESETS:
            raise ValueError(f"Preset {name!r} is already registered")
        _PRESETS[name] = preset


def list_presets(family_class: str | None = None) -> list[str]:
    """Names of the registered presets (of one model class if `family_class` is given)."""
    return sorted(name for name, p in _PRESETS.items() if family_class in (None, p["class"]))


def get_preset(name: str) -> dict[str, Any]:
    if name not in _PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Known presets: {list_presets()}")
    return _PRESETS[name]


class PresetMixin:
    """`from_preset(name, **overrides)` for a model class whose presets name it."""

    #: Config keys this class does not take (dropped from a preset's config).
    _preset_ignored_keys: tuple[str, ...] = ()
    #: The class name presets are registered under (a backbone reuses its task's presets).
    _preset_class: str = ""

    @classmethod
    def from_preset(cls, name: str, load_weights: bool = True, **overrides):
        """Builds the model from preset `name`; keyword arguments override its config.

        A preset with shipped weights loads them (`load_weights=False` skips that); a backbone
        takes them from its task model. Overrides that change weight shapes need
        `load_weights=False`.
        """
        preset = get_preset(name)
        if preset["class"] != (cls._preset_class or cls.__name__):
            known = list_presets(cls._preset_class or cls.__name__)
            raise ValueError(
                f"Preset {name!r} is for {preset['class']}, not {cls.__name__}. "
                f"Presets for {cls.__name__}: {known}"
            )
        if load_weights and "weights" in preset:
            if cls._preset_class and cls._preset_class != cls.__name__:
                task_class = _registered_class(cls._preset_class)
                return task_class.from_preset(name, **overrides).backbone
            model = cls(**{**preset["config"], **overrides})
            model.load_weights(preset_weights_path(name))
            return model
        config = {k: v for k, v in preset["config"].items() if k not in cls._preset_ignored_keys}
        return cls(**{**config, **overrides})


def preset_weights_path(name: str) -> str:
    """The shipped weights file of preset `name`."""
    preset = get_preset(name)
    if "weights" not in preset:
        raise ValueError(f"Preset {name!r} has no shipped weights")
    module = preset["metadata"]["package"]
    return str(importlib.resources.files(module).joinpath("weights", preset["weights"]))


def _registered_class(name: str):
    import keras

    return keras.saving.get_registered_object(f"spectralmix>{name}")
