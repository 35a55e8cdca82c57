"""Converting models saved by spectralmix 0.1 (flat mixer arguments, `FFTNetBlock` blocks).

spectralmix 0.1 task models took their backbone's arguments flat and their backbones built
`FFTNetBlock`s; today's take a backbone instance and build `MetaFormerBlock`s with the
mixer's arguments in `token_mixer_kwargs`. Keras addresses saved weights by layer class, so
an old `.keras` file needs its config and its weight names rewritten once:

    >>> convert_legacy_file("old.keras", "new.keras")  # doctest: +SKIP

The weights are copied as they are: the converted model computes exactly what the old one did.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from typing import Any

from spectralmix.models.base import LEGACY_MIXER_KEYS, upgrade_config

_TASK_BACKBONES = {
    "FFTNetClassifier": "FFTNetBackbone",
    "FFTNetViTImageClassifier": "FFTNetViTBackbone",
}
#: Weight groups of the old blocks inside a backbone's layer list.
_OLD_BLOCK = re.compile(r"^fft_net_block(_\d+)?$")


def _backbone_class(class_name: str) -> type:
    import spectralmix.models

    return getattr(spectralmix.models, class_name)


def _old_backbone_keys(class_name: str) -> set[str]:
    """The constructor arguments a spectralmix 0.1 backbone took: today's, with the flat mixer
    arguments instead of `token_mixer_kwargs` and `norm_first`."""
    keys = set(_backbone_class(class_name).config_keys) - {"token_mixer_kwargs", "norm_first"}
    return keys | set(LEGACY_MIXER_KEYS)


def _serialized(class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "module": _backbone_class(class_name).__module__,
        "class_name": class_name,
        "config": config,
        "registered_name": f"spectralmix>{class_name}",
    }


def convert_config(serialized: dict[str, Any]) -> dict[str, Any]:
    """A serialized spectralmix 0.1 backbone or task model (`{"class_name", "config", ...}`)
    as today's; anything else is returned unchanged."""
    class_name = serialized.get("class_name")
    config = serialized.get("config", {})
    if class_name in _TASK_BACKBONES.values():
        return {**serialized, "config": upgrade_config(config)}
    if class_name not in _TASK_BACKBONES or "backbone" in config:
        return serialized
    backbone_class = _TASK_BACKBONES[class_name]
    keys = _old_backbone_keys(backbone_class)
    backbone = {k: v for k, v in config.items() if k in keys}
    task = {k: v for k, v in config.items() if k not in keys}
    backbone.update(name="backbone", trainable=True, dtype=config.get("dtype"))
    if class_name == "FFTNetClassifier":
        backbone["class_token"] = task.get("pooling", "cls") == "cls"
        task["head_dropout"] = backbone.get("dropout", 0.0)
    task["backbone"] = _serialized(backbone_class, upgrade_config(backbone))
    return {**serialized, "config": task}


def convert_weights(path: str) -> int:
    """Renames the old block groups (`fft_net_block[_N]`) of a `.weights.h5` file in place to
    today's (`meta_former_block[_N]`); returns how many it renamed."""
    import h5py

    renamed = 0
    with h5py.File(path, "r+") as f:
        parents: list[h5py.Group] = []
        f.visititems(
            lambda name, obj: (
                parents.append(obj)
                if isinstance(obj, h5py.Group) and name.endswith("layers")
                else None
            )
        )
        for parent in parents:
            for name in list(parent.keys()):
                match = _OLD_BLOCK.match(name)
                if match:
                    parent.move(name, "meta_former_block" + (match.group(1) or ""))
                    renamed += 1
    return renamed


def convert_legacy_file(old_path, new_path) -> None:
    """Writes `new_path`, a `.keras` file loadable today, from `old_path`, saved by
    spectralmix 0.1. `new_path` appears only once complete."""
    old_path, new_path = os.fspath(old_path), os.fspath(new_path)
    if os.path.abspath(old_path) == os.path.abspath(new_path):
        raise ValueError(f"`new_path` must differ from `old_path`. Received: {new_path!r}")
    with zipfile.ZipFile(old_path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if "config.json" not in members or "model.weights.h5" not in members:
        raise ValueError(f"{old_path!r} is not a .keras file (no config.json/model.weights.h5)")
    config = json.loads(members["config.json"])
    members["config.json"] = json.dumps(convert_config(config)).encode()
    directory = os.path.dirname(os.path.abspath(new_path))
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        weights = os.path.join(scratch, "model.weights.h5")
        with open(weights, "wb") as f:
            f.write(members["model.weights.h5"])
        convert_weights(weights)
        with open(weights, "rb") as f:
            members["model.weights.h5"] = f.read()
        staged = os.path.join(scratch, "converted.keras")
        with zipfile.ZipFile(staged, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        os.replace(staged, new_path)
