"""Presets in keras-hub's layout: a directory, or a registered name for a shipped one.

A preset directory holds `config.json` (the backbone, serialized by Keras with its
`registered_name`), `model.weights.h5` (the backbone's weights), `metadata.json`
(`keras_version`, `spectralmix_version`, `parameter_count`, `date_saved`, ...) and, for a
task model, `task.json` and `task.weights.h5` (the whole task model). `save_to_preset(dir)`
writes one, `from_preset(name_or_dir)` reads one; with the `keras-hub` extra installed,
`keras_hub.models.Backbone.from_preset(dir)` reads the backbone too (docs/models.md).

A registered preset is a dict: `{"backbone": class name, "config": {...}, "metadata":
{...}}`, optionally `"task": {"class": name, "config": {...}}` (the task's own arguments) and
`"directory"`: a preset directory shipped inside the package. Nothing is downloaded.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from typing import Any

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
TASK_CONFIG_FILE = "task.json"
TASK_WEIGHTS_FILE = "task.weights.h5"

_PRESETS: dict[str, dict[str, Any]] = {}


def register_presets(presets: dict[str, dict[str, Any]]) -> None:
    for name, preset in presets.items():
        if name in _PRESETS:
            raise ValueError(f"Preset {name!r} is already registered")
        _PRESETS[name] = preset


def list_presets(model_class: str | None = None) -> list[str]:
    """Names of the registered presets (of one backbone or task class if given)."""

    def classes(preset):
        return {preset["backbone"], preset.get("task", {}).get("class")}

    return sorted(n for n, p in _PRESETS.items() if model_class in (None, *classes(p)))


def get_preset(name: str) -> dict[str, Any]:
    if name not in _PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Known presets: {list_presets()}")
    return _PRESETS[name]


def _read_json(directory: str, filename: str) -> dict[str, Any]:
    path = os.path.join(directory, filename)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{directory!r} is not a preset directory: it has no {filename}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path!r} is not valid JSON: {error}") from None


def _resolve_class(serialized: dict[str, Any], where: str) -> type:
    import keras

    import spectralmix.models  # noqa: F401  (registers the model classes)

    name = serialized.get("registered_name")
    cls = keras.saving.get_registered_object(name) if name else None
    if cls is None:
        raise ValueError(f"{where}: registered_name {name!r} names no registered Keras class")
    return cls


def _check_class(found: type, expected: type, where: str) -> None:
    if not issubclass(found, expected):
        raise ValueError(
            f"{where} holds a {found.__name__}, not a {expected.__name__}: "
            f"load it with {found.__name__}.from_preset"
        )


def _preset_source(preset: str) -> tuple[str | None, dict[str, Any] | None]:
    """`(directory, registered preset)`: a directory path, or a registered name (whose
    directory is the shipped one, if any)."""
    if not isinstance(preset, (str, os.PathLike)):
        raise TypeError(f"`preset` must be a preset name or directory. Received: {preset!r}")
    preset = os.fspath(preset)
    if os.path.isdir(preset):
        return preset, None
    registered = get_preset(preset)
    return registered.get("directory"), registered


def _metadata(model, extra: dict[str, Any] | None) -> dict[str, Any]:
    import keras

    import spectralmix

    return {
        **(extra or {}),
        "keras_version": keras.__version__,
        "spectralmix_version": spectralmix.__version__,
        "parameter_count": int(model.count_params()),
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
    }


def _write_json(path: str, value: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


class PresetMixin:
    """`from_preset` and `save_to_preset` for `Backbone` and `Task` subclasses."""

    @classmethod
    def from_preset(cls, preset, load_weights: bool = True, **overrides):
        """Builds the model from a preset directory or a registered preset name.

        Keyword arguments override the config (for a task model, the backbone's arguments go
        to its backbone). Weights load when the preset has them and `load_weights` is true;
        overrides that change weight shapes need `load_weights=False`.
        """
        directory, registered = _preset_source(preset)
        if getattr(cls, "backbone_class", None) is not None:
            return _task_from_preset(cls, directory, registered, load_weights, overrides)
        return _backbone_from_preset(cls, directory, registered, load_weights, overrides)

    def save_to_preset(self, directory, metadata: dict[str, Any] | None = None) -> None:
        """Writes the model as a preset directory (keras-hub's layout). The directory must not
        exist or be empty; nothing half-written is left if saving fails."""
        import keras

        directory = os.fspath(directory)
        if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
            raise ValueError(
                f"`directory` must be a new or empty directory. Received: directory={directory!r}"
            )
        parent = os.path.dirname(os.path.abspath(directory))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".preset-", dir=parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0o700 would hide it from other users
        try:
            backbone = getattr(self, "backbone", self)
            _write_json(
                os.path.join(staging, CONFIG_FILE), keras.saving.serialize_keras_object(backbone)
            )
            backbone.save_weights(os.path.join(staging, WEIGHTS_FILE))
            if backbone is not self:
                task = keras.saving.serialize_keras_object(self)
                _write_json(os.path.join(staging, TASK_CONFIG_FILE), task)
                self.save_weights(os.path.join(staging, TASK_WEIGHTS_FILE))
            _write_json(os.path.join(staging, METADATA_FILE), _metadata(self, metadata))
            if os.path.isdir(directory):
                os.rmdir(directory)
            os.replace(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _with_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`config` updated by `overrides`; another `token_mixer` without its own
    `token_mixer_kwargs` drops the preset's, which belong to the preset's mixer."""
    mixer = overrides.get("token_mixer", config.get("token_mixer"))
    if mixer != config.get("token_mixer") and "token_mixer_kwargs" not in overrides:
        overrides = {**overrides, "token_mixer_kwargs": None}
    return {**config, **overrides}


def _backbone_from_preset(cls, directory, registered, load_weights, overrides):
    if directory is None:
        _check_registered_class(cls, registered["backbone"])
        return cls(**_with_overrides(registered["config"], overrides))
    serialized = _read_json(directory, CONFIG_FILE)
    found = _resolve_class(serialized, os.path.join(directory, CONFIG_FILE))
    _check_class(found, cls, directory)
    model = found.from_config(_with_overrides(serialized["config"], overrides))
    if load_weights:
        model.load_weights(os.path.join(directory, WEIGHTS_FILE))
    return model


def _task_from_preset(cls, directory, registered, load_weights, overrides):
    backbone_keys = set(cls.backbone_class.config_keys)
    backbone_overrides = {k: v for k, v in overrides.items() if k in backbone_keys}
    if "dtype" in overrides:  # the whole model's policy, as for a model built directly
        backbone_overrides["dtype"] = overrides["dtype"]
    task_overrides = {k: v for k, v in overrides.items() if k not in backbone_keys}
    has_task = directory is not None and os.path.exists(os.path.join(directory, TASK_CONFIG_FILE))
    if has_task:
        serialized = _read_json(directory, TASK_CONFIG_FILE)
        found = _resolve_class(serialized, os.path.join(directory, TASK_CONFIG_FILE))
        _check_class(found, cls, directory)
        task_config = {k: v for k, v in serialized["config"].items() if k != "backbone"}
    else:
        found = cls
        task_preset = (registered or {}).get("task", {})
        if task_preset and task_preset["class"] != cls.__name__:
            _check_registered_class(cls, task_preset["class"])
        task_config = dict(task_preset.get("config", {}))
    backbone = cls.backbone_class.from_preset(
        directory or registered_name(registered),
        load_weights=load_weights and not has_task,
        **backbone_overrides,
    )
    model = found(backbone=backbone, **{**task_config, **task_overrides})
    if has_task and load_weights:
        model.load_weights(os.path.join(directory, TASK_WEIGHTS_FILE))
    return model


def registered_name(registered: dict[str, Any]) -> str:
    (name,) = [n for n, p in _PRESETS.items() if p is registered]
    return name


def _check_registered_class(cls: type, expected: str) -> None:
    if cls.__name__ != expected and expected not in [c.__name__ for c in cls.__mro__]:
        raise ValueError(
            f"That preset is for {expected}, not {cls.__name__}. "
            f"Presets for {cls.__name__}: {list_presets(cls.__name__)}"
        )
