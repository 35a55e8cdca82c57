"""Presets: registered names, and directories in keras-hub's layout (`save_to_preset`,
`from_preset`)."""

import datetime
import json
import os
import re

import h5py
import keras
import numpy as np
import pytest

import spectralmix
from spectralmix.models import (
    FFTNetBackbone,
    FFTNetClassifier,
    FFTNetViTBackbone,
    FFTNetViTImageClassifier,
    get_preset,
    list_presets,
)
from spectralmix.models.presets import register_presets
from tests.helpers import to_numpy

BACKBONE_FILES = {"config.json", "model.weights.h5", "metadata.json"}
TASK_FILES = BACKBONE_FILES | {"task.json", "task.weights.h5"}


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="Known presets: .*fftnet_vit_tiny_patch16_224"):
        get_preset("fftnet_vit_enormous")


def test_preset_of_another_class_is_rejected():
    with pytest.raises(ValueError, match="is for FFTNetViTImageClassifier, not FFTNetClassifier"):
        FFTNetClassifier.from_preset("fftnet_vit_tiny_patch16_224")


def test_backbone_uses_its_task_presets_without_the_head():
    backbone = FFTNetViTBackbone.from_preset("fftnet_vit_tiny_patch16_224", num_layers=1)
    assert backbone.num_layers == 1
    assert "num_classes" not in backbone.get_config()


def test_names_register_once():
    name = list_presets()[0]
    with pytest.raises(ValueError, match="already registered"):
        register_presets({name: get_preset(name)})


# -- preset directories -----------------------------------------------------------------------


def _perturb(model, rng):
    """Moves every weight off its initial value, so a weight loaded in the wrong place shows."""
    for v in model.weights:
        v.assign(to_numpy(v) + 0.3 * rng.standard_normal(v.shape).astype(v.dtype))
    return model


def _sequence_task(rng, **backbone_kwargs):
    backbone = FFTNetBackbone(
        **{
            "vocabulary_size": 12,
            "max_sequence_length": 10,
            "hidden_dim": 8,
            "num_layers": 2,
            "num_heads": 2,
            "class_token": True,
            **backbone_kwargs,
        }
    )
    return _perturb(FFTNetClassifier(backbone=backbone, num_classes=3, head_dropout=0.1), rng)


def _image_task(rng):
    backbone = FFTNetViTBackbone(
        image_size=8,
        patch_size=4,
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        token_mixer="attention",
        norm_first=True,
    )
    return _perturb(FFTNetViTImageClassifier(backbone=backbone, num_classes=4), rng)


def _inputs(rng, task):
    if isinstance(task, FFTNetClassifier):
        ids = rng.integers(1, 12, (3, 9))
        ids[1, 5:] = 0
        return ids
    return rng.standard_normal((2, 8, 8, 3)).astype("float32")


def _read_json(directory, name):
    with open(os.path.join(directory, name), encoding="utf-8") as f:
        return json.load(f)


def _h5_multiset(path):
    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: arrays.append(obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
    return sorted((a.shape, a.tobytes()) for a in arrays)


def _multiset(weights):
    return sorted((w.shape, w.tobytes()) for w in weights)


@pytest.fixture(params=["sequence", "image"])
def task(request, rng):
    return _sequence_task(rng) if request.param == "sequence" else _image_task(rng)


def test_task_preset_is_five_files_in_keras_hub_layout(tmp_path, task):
    directory = os.path.join(tmp_path, "preset")
    task.save_to_preset(directory, metadata={"description": "tiny"})
    assert set(os.listdir(directory)) == TASK_FILES
    backbone = _read_json(directory, "config.json")
    backbone_class = type(task.backbone).__name__
    assert backbone["registered_name"] == f"spectralmix>{backbone_class}"
    assert backbone["class_name"] == backbone_class
    assert backbone["config"] == json.loads(json.dumps(task.backbone.get_config()))
    serialized_task = _read_json(directory, "task.json")
    assert serialized_task["registered_name"] == f"spectralmix>{type(task).__name__}"
    assert serialized_task["config"]["backbone"]["config"] == backbone["config"]
    metadata = _read_json(directory, "metadata.json")
    assert metadata["description"] == "tiny"
    assert metadata["keras_version"] == keras.__version__
    assert metadata["spectralmix_version"] == spectralmix.__version__
    assert metadata["parameter_count"] == task.count_params()
    datetime.datetime.strptime(metadata["date_saved"], "%Y-%m-%d@%H:%M:%S")
    weights = [to_numpy(w) for w in task.backbone.weights]
    assert _h5_multiset(os.path.join(directory, "model.weights.h5")) == _multiset(weights)
    weights = [to_numpy(w) for w in task.weights]
    assert _h5_multiset(os.path.join(directory, "task.weights.h5")) == _multiset(weights)


def test_backbone_preset_is_three_files(tmp_path, rng):
    backbone = _sequence_task(rng).backbone
    directory = os.path.join(tmp_path, "nested", "new", "preset")  # parents are made
    backbone.save_to_preset(directory)
    assert set(os.listdir(directory)) == BACKBONE_FILES
    assert _read_json(directory, "config.json")["registered_name"] == "spectralmix>FFTNetBackbone"
    assert _read_json(directory, "metadata.json")["parameter_count"] == backbone.count_params()


def test_from_preset_directory_reproduces_task_and_backbone_exactly(tmp_path, rng, task):
    x = _inputs(rng, task)
    task.save_to_preset(os.path.join(tmp_path, "task"))
    task.backbone.save_to_preset(os.path.join(tmp_path, "backbone"))
    task_class, backbone_class = type(task), type(task.backbone)

    loaded = task_class.from_preset(os.path.join(tmp_path, "task"))
    assert type(loaded) is task_class
    assert loaded.get_config() == task.get_config()
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(task(x)))

    expected = to_numpy(task.backbone(x))
    for preset in ("backbone", "task"):  # a task preset holds its backbone too
        backbone = backbone_class.from_preset(os.path.join(tmp_path, preset))
        assert type(backbone) is backbone_class
        assert backbone.get_config() == task.backbone.get_config()
        np.testing.assert_array_equal(to_numpy(backbone(x)), expected)

    # Without the weights: the same architecture, freshly initialized.
    fresh = task_class.from_preset(os.path.join(tmp_path, "task"), load_weights=False)
    assert fresh.count_params() == task.count_params()
    assert not np.array_equal(to_numpy(fresh(x)), to_numpy(task(x)))


def test_task_from_a_backbone_preset_gets_a_new_head(tmp_path, rng):
    task = _sequence_task(rng)
    task.backbone.save_to_preset(os.path.join(tmp_path, "backbone"))
    model = FFTNetClassifier.from_preset(os.path.join(tmp_path, "backbone"), num_classes=5)
    assert model.num_classes == 5
    assert _multiset(to_numpy(w) for w in model.backbone.weights) == _multiset(
        to_numpy(w) for w in task.backbone.weights
    )


def test_overrides_go_to_the_backbone_and_the_task(tmp_path, rng):
    task = _sequence_task(rng)
    directory = os.path.join(tmp_path, "task")
    task.save_to_preset(directory)
    model = FFTNetClassifier.from_preset(
        directory, load_weights=False, num_layers=1, token_mixer="attention", num_classes=7
    )
    assert (model.backbone.num_layers, model.backbone.token_mixer) == (1, "attention")
    assert model.num_classes == 7
    assert model.head_dropout == 0.1  # the rest of the task config comes from the preset
    assert model.backbone.class_token


def test_another_mixer_drops_the_preset_mixer_arguments(tmp_path, rng):
    task = _sequence_task(rng, token_mixer_kwargs={"variant": "v2", "modrelu_epsilon": 0.0})
    directory = os.path.join(tmp_path, "task")
    task.save_to_preset(directory)
    for cls in (FFTNetClassifier, FFTNetBackbone):
        model = cls.from_preset(directory, load_weights=False, token_mixer="attention")
        backbone = getattr(model, "backbone", model)
        assert (backbone.token_mixer, backbone.token_mixer_kwargs) == ("attention", {})
    fnet = FFTNetBackbone.from_preset(
        directory, load_weights=False, token_mixer="fnet", token_mixer_kwargs={"fft_impl": "dft"}
    )
    assert fnet.token_mixer_kwargs == {"fft_impl": "dft"}
    # The same mixer keeps them, and so do overrides of anything else.
    for overrides in ({"token_mixer": "fftnet"}, {"num_layers": 1}):
        model = FFTNetBackbone.from_preset(directory, load_weights=False, **overrides)
        assert model.token_mixer_kwargs == {"variant": "v2", "modrelu_epsilon": 0.0}
    vit = FFTNetViTImageClassifier.from_preset(
        "fftnet_vit_tiny_patch16_224",
        num_layers=1,
        token_mixer_kwargs={"variant": "v2"},
    )
    assert vit.backbone.get_layer("block_0").mixer.variant == "v2"


def test_save_refuses_a_non_empty_directory_or_a_file(tmp_path, rng):
    task = _sequence_task(rng)
    directory = os.path.join(tmp_path, "preset")
    os.makedirs(directory)
    with open(os.path.join(directory, "keep.txt"), "w") as f:
        f.write("mine")
    with pytest.raises(ValueError, match=r"must be a new or empty directory.*preset"):
        task.save_to_preset(directory)
    assert os.listdir(directory) == ["keep.txt"]
    a_file = os.path.join(directory, "keep.txt")
    with pytest.raises(ValueError, match="must be a new or empty directory"):
        task.save_to_preset(a_file)
    # An empty directory is fine.
    empty = os.path.join(tmp_path, "empty")
    os.makedirs(empty)
    task.save_to_preset(empty)
    assert set(os.listdir(empty)) == TASK_FILES
    assert sorted(os.listdir(tmp_path)) == ["empty", "preset"]


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("failing", [FFTNetBackbone, FFTNetClassifier])
def test_failed_save_leaves_nothing_half_written(tmp_path, rng, monkeypatch, existing, failing):
    task = _sequence_task(rng)
    directory = os.path.join(tmp_path, "preset")
    if existing:
        os.makedirs(directory)

    def fail(self, filepath, *args, **kwargs):
        raise OSError(f"disk full writing {os.path.basename(filepath)}")

    # The backbone's weights are written first, the task's after the backbone's files.
    monkeypatch.setattr(failing, "save_weights", fail)
    with pytest.raises(OSError, match="disk full"):
        task.save_to_preset(directory)
    assert os.listdir(tmp_path) == (["preset"] if existing else [])
    if existing:
        assert os.listdir(directory) == []
    monkeypatch.undo()
    task.save_to_preset(directory)  # and a later save succeeds
    assert set(os.listdir(directory)) == TASK_FILES


def test_a_directory_of_another_class_is_refused(tmp_path, rng):
    sequence, image = _sequence_task(rng), _image_task(rng)
    sequence.save_to_preset(os.path.join(tmp_path, "sequence"))
    image.backbone.save_to_preset(os.path.join(tmp_path, "image_backbone"))
    cases = [
        (FFTNetViTBackbone, "sequence", "FFTNetBackbone", "FFTNetViTBackbone"),
        (FFTNetViTImageClassifier, "sequence", "FFTNetClassifier", "FFTNetViTImageClassifier"),
        (FFTNetBackbone, "image_backbone", "FFTNetViTBackbone", "FFTNetBackbone"),
        (FFTNetClassifier, "image_backbone", "FFTNetViTBackbone", "FFTNetBackbone"),
    ]
    for cls, preset, found, expected in cases:
        directory = os.path.join(tmp_path, preset)
        with pytest.raises(
            ValueError,
            match=re.escape(
                f"{directory} holds a {found}, not a {expected}: load it with {found}.from_preset"
            ),
        ):
            cls.from_preset(directory, num_classes=3)


def test_missing_or_invalid_directories_are_named(tmp_path, rng):
    missing = os.path.join(tmp_path, "missing")
    with pytest.raises(ValueError, match=re.escape(repr(missing))):
        FFTNetBackbone.from_preset(missing)

    empty = os.path.join(tmp_path, "empty")
    os.makedirs(empty)
    with pytest.raises(ValueError, match=r"'.*empty' is not a preset directory: it has no config"):
        FFTNetBackbone.from_preset(empty)

    task = _sequence_task(rng)
    directory = os.path.join(tmp_path, "preset")
    task.save_to_preset(directory)
    with open(os.path.join(directory, "task.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match=r"task\.json' is not valid JSON"):
        FFTNetClassifier.from_preset(directory)
    config = _read_json(directory, "config.json")
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({**config, "registered_name": "spectralmix>NoSuchBackbone"}, f)
    with pytest.raises(
        ValueError, match=r"config\.json: registered_name 'spectralmix>NoSuchBackbone' names no"
    ):
        FFTNetBackbone.from_preset(directory)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    os.remove(os.path.join(directory, "model.weights.h5"))
    with pytest.raises(FileNotFoundError, match=r"model\.weights\.h5"):
        FFTNetBackbone.from_preset(directory)
    with pytest.raises(TypeError, match="must be a preset name or directory"):
        FFTNetBackbone.from_preset(3)
