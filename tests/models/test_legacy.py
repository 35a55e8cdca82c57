"""Models saved by spectralmix 0.1: refused with the conversion to run, and converted exactly.

The fixtures in tests/models/data/ were written by spectralmix 0.1 itself (the code before the
backbone/task refactor) with `data/make_legacy_0_1_fixtures.py`: a tiny FFTNet classifier
(vocabulary 5, 8 tokens, width 8, 1 block, class-token pooling) and a tiny attention ViT
(`token_mixer="attention"`, `variant="v2"`), a user's functional model of two FFTNetBlocks
(which needs no conversion), every weight moved off its initial value, each with an `.npz` of
an input and the old model's outputs on it.
"""

import copy
import json
import os
import pathlib
import zipfile

import h5py
import keras
import numpy as np
import pytest

from spectralmix.layers import FFTNetBlock, MetaFormerBlock, SelfAttention
from spectralmix.models import (
    FFTNetBackbone,
    FFTNetClassifier,
    FFTNetViTBackbone,
    FFTNetViTImageClassifier,
    convert_legacy_file,
    legacy,
)
from spectralmix.models.base import is_legacy_config, upgrade_config
from tests.helpers import assert_close, to_numpy

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
CLASSIFIER = os.path.join(DATA, "legacy_0_1_fftnet_classifier")
VIT = os.path.join(DATA, "legacy_0_1_fftnet_vit_image_classifier")
BLOCKS = os.path.join(DATA, "legacy_0_1_fftnet_blocks")
CONVERT = "spectralmix.models.convert_legacy_file(old_path, new_path)"

DTYPE = {
    "module": "keras",
    "class_name": "DTypePolicy",
    "config": {"name": "float32"},
    "registered_name": None,
}

#: A spectralmix 0.1 FFTNetClassifier as its `.keras` config.json held it, written out by hand:
#: flat backbone arguments, mean pooling, saved before `modrelu_epsilon` existed.
OLD_CLASSIFIER = {
    "module": "spectralmix.models.fftnet.fftnet_classifier",
    "class_name": "FFTNetClassifier",
    "config": {
        "name": "fft_net_classifier",
        "trainable": True,
        "dtype": DTYPE,
        "num_classes": 4,
        "pooling": "mean",
        "vocabulary_size": 20,
        "max_sequence_length": 16,
        "hidden_dim": 16,
        "num_layers": 2,
        "num_heads": 2,
        "mlp_ratio": 2.0,
        "dropout": 0.1,
        "drop_path": 0.05,
        "token_mixer": "fftnet",
        "variant": "v2",
        "layer_norm_epsilon": 1e-05,
        "fft_impl": "dft",
    },
    "registered_name": "spectralmix>FFTNetClassifier",
    "build_config": {"input_shape": None},
    "compile_config": {},
}

#: The same model as today's config, written out by hand: the backbone nested, the class token
#: from the pooling, the head dropout from the dropout (0.1 used it before the head), the mixer
#: arguments in `token_mixer_kwargs` (the exact modReLU it was trained with) and `v2`'s pre-norm.
NEW_CLASSIFIER = {
    "module": "spectralmix.models.fftnet.fftnet_classifier",
    "class_name": "FFTNetClassifier",
    "config": {
        "name": "fft_net_classifier",
        "trainable": True,
        "dtype": DTYPE,
        "num_classes": 4,
        "pooling": "mean",
        "head_dropout": 0.1,
        "backbone": {
            "module": "spectralmix.models.fftnet.fftnet_backbone",
            "class_name": "FFTNetBackbone",
            "config": {
                "name": "backbone",
                "trainable": True,
                "dtype": DTYPE,
                "vocabulary_size": 20,
                "max_sequence_length": 16,
                "hidden_dim": 16,
                "num_layers": 2,
                "num_heads": 2,
                "mlp_ratio": 2.0,
                "dropout": 0.1,
                "drop_path": 0.05,
                "token_mixer": "fftnet",
                "token_mixer_kwargs": {"variant": "v2", "fft_impl": "dft", "modrelu_epsilon": 0.0},
                "norm_first": True,
                "class_token": False,
                "layer_norm_epsilon": 1e-05,
            },
            "registered_name": "spectralmix>FFTNetBackbone",
        },
    },
    "registered_name": "spectralmix>FFTNetClassifier",
    "build_config": {"input_shape": None},
    "compile_config": {},
}


def _old_config(path):
    with zipfile.ZipFile(path + ".keras") as archive:
        return json.loads(archive.read("config.json"))


def _h5_arrays(path):
    """Every dataset of an `.h5` file: `{path: array}`."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return arrays


def _as_multiset(arrays):
    return sorted((a.shape, str(a.dtype), a.tobytes()) for a in arrays)


def _old_weights(path, tmp_path):
    with zipfile.ZipFile(path + ".keras") as archive:
        archive.extract("model.weights.h5", tmp_path)
    return _h5_arrays(os.path.join(tmp_path, "model.weights.h5"))


# -- refusing old configs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "path"),
    [(FFTNetClassifier, CLASSIFIER), (FFTNetViTImageClassifier, VIT)],
    ids=["classifier", "vit"],
)
def test_old_config_raises_one_line_naming_the_conversion(cls, path):
    config = _old_config(path)["config"]
    with pytest.raises(ValueError, match="spectralmix 0.1") as info:
        cls.from_config(config)
    message = str(info.value)
    assert "\n" not in message
    assert f"This {cls.__name__} config was saved by spectralmix 0.1" in message
    assert message.endswith(f"`{CONVERT}`")


@pytest.mark.parametrize("path", [CLASSIFIER, VIT], ids=["classifier", "vit"])
def test_loading_an_old_file_names_the_conversion(path):
    with pytest.raises(ValueError, match=r"convert_legacy_file\(old_path, new_path\)"):
        keras.models.load_model(path + ".keras")


@pytest.mark.parametrize("cls", [FFTNetBackbone, FFTNetViTBackbone])
def test_old_backbone_config_raises_too(cls):
    backbone = _todays_backbone_config(cls)
    old = {k: v for k, v in backbone.items() if k not in ("token_mixer_kwargs", "norm_first")}
    old.update(variant="v1", fft_impl="fft")
    assert is_legacy_config(old)
    assert not is_legacy_config(backbone)
    with pytest.raises(ValueError, match=f"This {cls.__name__} config .*convert_legacy_file"):
        cls.from_config(old)


def _todays_backbone_config(cls):
    if cls is FFTNetBackbone:
        return NEW_CLASSIFIER["config"]["backbone"]["config"]
    return FFTNetViTBackbone(
        image_size=8, patch_size=4, hidden_dim=8, num_layers=1, num_heads=2
    ).get_config()


# -- convert_config ---------------------------------------------------------------------------


def test_convert_config_nests_the_backbone_of_a_hand_written_0_1_classifier():
    old = copy.deepcopy(OLD_CLASSIFIER)
    assert legacy.convert_config(old) == NEW_CLASSIFIER
    assert old == OLD_CLASSIFIER  # the input is left as it was
    model = keras.saving.deserialize_keras_object(NEW_CLASSIFIER)
    assert isinstance(model, FFTNetClassifier)
    # Loaded, it writes what 0.1 lacked with the values 0.1 had: a filter value per frequency
    # bin of its 16 tokens (16 // 2 + 1), a position vector per token, no remat.
    assert model.get_config()["backbone"]["config"] == {
        **NEW_CLASSIFIER["config"]["backbone"]["config"],
        "filter_bins": 9,
        "num_positions": 16,
        "remat": False,
    }
    mixer = model.backbone.get_layer("block_1").mixer
    assert mixer.filter_bins == 9
    assert (mixer.variant, mixer.fft_impl, mixer.modrelu_epsilon) == ("v2", "dft", 0.0)
    assert model.get_layer("head_dropout").rate == 0.1


@pytest.mark.parametrize(("pooling", "class_token"), [("cls", True), ("mean", False), (None, True)])
def test_convert_config_class_token_follows_the_pooling(pooling, class_token):
    old = copy.deepcopy(OLD_CLASSIFIER)
    if pooling is None:  # 0.1's default pooling was "cls"
        del old["config"]["pooling"]
    else:
        old["config"]["pooling"] = pooling
    backbone = legacy.convert_config(old)["config"]["backbone"]["config"]
    assert backbone["class_token"] is class_token


@pytest.mark.parametrize(
    ("token_mixer", "kwargs"),
    [
        ("fftnet", {"variant": "v2", "fft_impl": "dft", "modrelu_epsilon": 1e-3}),
        ("fnet", {"fft_impl": "dft"}),
        ("attention", {}),
    ],
)
def test_convert_config_keeps_only_what_the_mixer_takes(token_mixer, kwargs):
    old = copy.deepcopy(OLD_CLASSIFIER)
    old["config"].update(token_mixer=token_mixer, modrelu_epsilon=1e-3)
    backbone = legacy.convert_config(old)["config"]["backbone"]["config"]
    assert backbone["token_mixer_kwargs"] == kwargs
    assert backbone["norm_first"] is True  # variant="v2", whatever the mixer


def test_convert_config_of_a_0_1_vit_and_a_0_1_backbone():
    old_vit = _old_config(VIT)
    converted = legacy.convert_config(old_vit)
    task = converted["config"]
    assert set(task) == {"name", "trainable", "dtype", "num_classes", "head_dropout", "backbone"}
    assert task["backbone"]["registered_name"] == "spectralmix>FFTNetViTBackbone"
    backbone = task["backbone"]["config"]
    assert (backbone["token_mixer"], backbone["token_mixer_kwargs"]) == ("attention", {})
    assert backbone["norm_first"] is True
    assert "variant" not in backbone
    old_backbone = {"class_name": "FFTNetBackbone", "config": {"variant": "v1", "fft_impl": "fft"}}
    assert legacy.convert_config(old_backbone)["config"] == {
        "token_mixer_kwargs": {"variant": "v1", "fft_impl": "fft", "modrelu_epsilon": 0.0},
        "norm_first": False,
    }
    assert upgrade_config(old_backbone["config"]) == legacy.convert_config(old_backbone)["config"]


def test_convert_config_leaves_todays_and_other_configs_alone():
    assert legacy.convert_config(NEW_CLASSIFIER) == NEW_CLASSIFIER
    assert legacy.convert_config(legacy.convert_config(OLD_CLASSIFIER)) == NEW_CLASSIFIER
    dense = keras.saving.serialize_keras_object(keras.layers.Dense(3))
    assert legacy.convert_config(dense) == dense


# -- convert_weights and convert_legacy_file ---------------------------------------------------


def test_convert_weights_renames_exactly_the_old_block_groups(tmp_path):
    path = os.path.join(tmp_path, "model.weights.h5")
    names = [
        "layers/fft_net_block/vars/0",
        "layers/backbone/layers/fft_net_block/mixer/vars/0",
        "layers/backbone/layers/fft_net_block_1/vars/0",
        "layers/backbone/layers/fft_net_block_12/vars/0",
        "layers/backbone/layers/my_fft_net_block/vars/0",
        "layers/backbone/layers/fft_net_block_x/vars/0",
        "layers/backbone/fft_net_block/vars/0",  # not in a layer list
    ]
    with h5py.File(path, "w") as f:
        for i, name in enumerate(names):
            f[name] = np.full((2,), i, "float32")
    assert legacy.convert_weights(path) == 4
    expected = [
        "layers/meta_former_block/vars/0",
        "layers/backbone/layers/meta_former_block/mixer/vars/0",
        "layers/backbone/layers/meta_former_block_1/vars/0",
        "layers/backbone/layers/meta_former_block_12/vars/0",
        *names[4:],
    ]
    arrays = _h5_arrays(path)
    assert sorted(arrays) == sorted(expected)
    for i, name in enumerate(expected):
        np.testing.assert_array_equal(arrays[name], np.full((2,), i, "float32"))


@pytest.mark.parametrize("path", [CLASSIFIER, VIT], ids=["classifier", "vit"])
def test_converted_file_computes_what_the_old_model_did(tmp_path, path):
    old_bytes = pathlib.Path(path + ".keras").read_bytes()
    new_path = os.path.join(tmp_path, "converted.keras")
    convert_legacy_file(path + ".keras", new_path)
    assert pathlib.Path(path + ".keras").read_bytes() == old_bytes  # the old file is untouched
    model = keras.models.load_model(new_path)
    fixture = np.load(path + ".npz")
    # Same weights, moved not changed: every saved array is a weight of the loaded model.
    assert _as_multiset(to_numpy(w) for w in model.weights) == _as_multiset(
        _old_weights(path, tmp_path).values()
    )
    # The same outputs: the spectral core's summation order may differ from 0.1's (and across
    # backends) by float32 rounding, nothing more; a misplaced weight changes them by ~1.
    assert_close(model(fixture["inputs"], training=False), fixture["outputs"], "float32_op")
    for layer in model.backbone.layers:
        assert not type(layer).__name__.startswith("FFTNetBlock")
    assert type(model.backbone.get_layer("block_0")) is MetaFormerBlock


def test_converted_classifier_has_the_old_architecture(tmp_path):
    new_path = os.path.join(tmp_path, "converted.keras")
    convert_legacy_file(CLASSIFIER + ".keras", new_path)
    model = keras.models.load_model(new_path)
    assert isinstance(model, FFTNetClassifier)
    assert (model.pooling, model.num_classes, model.head_dropout) == ("cls", 3, 0.0)
    backbone = model.backbone
    assert backbone.class_token
    assert not backbone.norm_first
    assert backbone.token_mixer_kwargs == {
        "variant": "v1",
        "fft_impl": "fft",
        "modrelu_epsilon": 1e-3,
    }
    assert backbone.get_layer("block_0").mixer.max_sequence_length == 9
    with zipfile.ZipFile(new_path) as archive:
        archive.extract("model.weights.h5", tmp_path)
    assert not [
        n for n in _h5_arrays(os.path.join(tmp_path, "model.weights.h5")) if "fft_net_block" in n
    ]


def test_converted_vit_has_the_old_architecture(tmp_path):
    new_path = os.path.join(tmp_path, "converted.keras")
    convert_legacy_file(VIT + ".keras", new_path)
    model = keras.models.load_model(new_path)
    assert isinstance(model, FFTNetViTImageClassifier)
    backbone = model.backbone
    assert (backbone.token_mixer, backbone.token_mixer_kwargs, backbone.norm_first) == (
        "attention",
        {},
        True,
    )
    assert type(backbone.get_layer("block_0").mixer) is SelfAttention


def test_convert_legacy_file_refuses_bad_paths_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="`new_path` must differ from `old_path`"):
        convert_legacy_file(CLASSIFIER + ".keras", CLASSIFIER + ".keras")
    not_keras = os.path.join(tmp_path, "other.zip")
    with zipfile.ZipFile(not_keras, "w") as archive:
        archive.writestr("readme.txt", "hello")
    new_path = os.path.join(tmp_path, "converted.keras")
    with pytest.raises(ValueError, match=f"{not_keras!r} is not a .keras file"):
        convert_legacy_file(not_keras, new_path)
    assert sorted(os.listdir(tmp_path)) == ["other.zip"]


def test_convert_legacy_file_leaves_nothing_half_written(tmp_path, monkeypatch):
    def fail(path):
        raise OSError("disk full")

    monkeypatch.setattr(legacy, "convert_weights", fail)
    new_path = os.path.join(tmp_path, "converted.keras")
    with pytest.raises(OSError, match="disk full"):
        convert_legacy_file(CLASSIFIER + ".keras", new_path)
    assert os.listdir(tmp_path) == []


def test_0_1_fftnet_blocks_load_unconverted(tmp_path):
    """FFTNetBlock keeps 0.1's config and weight layout: a user's model of them just loads."""
    model = keras.models.load_model(BLOCKS + ".keras")
    blocks = [layer for layer in model.layers if isinstance(layer, FFTNetBlock)]
    assert [(b.token_mixer, b.variant, b.norm_first) for b in blocks] == [
        ("fftnet", "v1", False),
        ("attention", "v2", True),
    ]
    assert blocks[0].mixer.modrelu_epsilon == 0.0
    assert type(blocks[1].mixer) is SelfAttention
    assert _as_multiset(to_numpy(w) for w in model.weights) == _as_multiset(
        _old_weights(BLOCKS, tmp_path).values()
    )
    fixture = np.load(BLOCKS + ".npz")
    assert_close(model(fixture["inputs"], training=False), fixture["outputs"], "float32_op")
