"""Preset sizes and parameter counts (the large presets are never built whole in CI)."""

import pytest

from spectralmix.models import FFTNetViTImageClassifier, get_preset, list_presets
from spectralmix.models.fftnet_vit import FFTNET_VIT_PRESETS

SIZES = {  # (hidden_dim, num_layers, num_heads): the paper (B/L/H) and DeiT (Ti/S)
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
}


def _config(name):
    """A preset's backbone arguments and its task's (`num_classes`)."""
    preset = FFTNET_VIT_PRESETS[name]
    return {**preset["config"], **preset["task"]["config"]}


def analytic_parameters(config, token_mixer="fftnet"):
    d, layers, heads = config["hidden_dim"], config["num_layers"], config["num_heads"]
    p, c, classes = config["patch_size"], config["num_channels"], config["num_classes"]
    grid = config["image_size"] // p
    tokens = grid * grid + 1
    bins = tokens // 2 + 1
    hidden = round(d * config["mlp_ratio"])
    embed = p * p * c * d + d + grid * grid * d + d  # conv, positions, class token
    mixer = {
        "fftnet": 2 * heads * bins + d * d + d + d * heads * bins + heads * bins,
        "fnet": 0,
        "attention": 4 * (d * d + d),
    }[token_mixer]
    block = 4 * d + d * hidden + hidden + hidden * d + d + mixer
    return embed + layers * block + 2 * d + d * classes + classes


def test_registry():
    names = {f"fftnet_vit_{s}_patch16_224" for s in SIZES}
    assert names <= set(list_presets())
    assert set(list_presets("FFTNetViTImageClassifier")) == names
    for size, (width, depth, heads) in SIZES.items():
        config = get_preset(f"fftnet_vit_{size}_patch16_224")["config"]
        assert (config["hidden_dim"], config["num_layers"], config["num_heads"]) == (
            width,
            depth,
            heads,
        )
    with pytest.raises(ValueError, match="fftnet_vit_base_patch16_224"):
        get_preset("vit_base")
    for name in names:
        preset = get_preset(name)
        # Configurations only: nothing shipped, nothing downloaded.
        assert "directory" not in preset
        assert preset["backbone"] == "FFTNetViTBackbone"
        assert preset["task"] == {
            "class": "FFTNetViTImageClassifier",
            "config": {"num_classes": 1000},
        }
    assert set(list_presets("FFTNetViTBackbone")) == names


CASES = [(name, "fftnet") for name in sorted(FFTNET_VIT_PRESETS)] + [
    ("fftnet_vit_base_patch16_224", "attention")
]


@pytest.mark.parametrize(("name", "token_mixer"), CASES)
def test_parameter_count_matches_formula(name, token_mixer):
    """Builds 1- and 2-block versions and extrapolates linearly in depth to the full preset."""
    config = _config(name)
    counts = [
        FFTNetViTImageClassifier.from_preset(
            name, num_layers=n, token_mixer=token_mixer
        ).count_params()
        for n in (1, 2)
    ]
    full = counts[0] + (config["num_layers"] - 1) * (counts[1] - counts[0])
    assert full == analytic_parameters(config, token_mixer)


def test_tiny_built_whole():
    config = _config("fftnet_vit_tiny_patch16_224")
    model = FFTNetViTImageClassifier.from_preset("fftnet_vit_tiny_patch16_224")
    assert model.count_params() == analytic_parameters(config)
