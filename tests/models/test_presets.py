import pytest

from spectralmix.models import FFTNetClassifier, FFTNetViTBackbone, get_preset, list_presets
from spectralmix.models.presets import register_presets


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
