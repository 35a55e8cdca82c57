"""`spectralmix.flops`: hand-counted small models, invariants, scaling and errors.

The counts are written out term by term so that each convention of the module docstring is
checked once. Pure Python: the same results on every backend.
"""

import math

import pytest

from spectralmix.flops import CATEGORIES, FlopCount, count_flops, flop_table

# A 1-layer FFTNetViT: 8×8 grey images, 4×4 patches -> 4 patches + class token = 5 tokens,
# D = 4 channels, 2 heads, MLP hidden 4, 3 classes. K = K_max = 5 // 2 + 1 = 3 bins.
TINY_VIT = {
    "family": "fftnet_vit",
    "image_size": 8,
    "patch_size": 4,
    "num_channels": 1,
    "hidden_dim": 4,
    "num_layers": 1,
    "num_heads": 2,
    "mlp_ratio": 1.0,
    "num_classes": 3,
}
TINY_SHAPE = (8, 8, 1)
TOKENS, CHANNELS = 5, 4
RFFT_5 = round(2.5 * 5 * math.log2(5))  # 29: one real FFT of 5 points
CFFT_5 = round(5 * 5 * math.log2(5))  # 58: one complex FFT of 5 points
CFFT_4 = round(5 * 4 * math.log2(4))  # 40: one complex FFT of 4 points

# Shared by every mixer of TINY_VIT.
PATCH_MATMUL = 4 * (2 * 16 * 4)  # 4 patches, a dense 4·4·1 = 16 -> 4 each: 512
PATCH_BIAS = 4 * 4  # 16
MLP_MATMUL = 2 * (2 * 4 * 4 * 5)  # two Dense(4 -> 4) over 5 tokens: 320
MLP_BIAS = 2 * (4 * 5)  # 40
HEAD_MATMUL = 2 * 4 * 3  # on the class token: 24
HEAD_BIAS = 3
LAYER_NORM = 3 * 8 * 5 * 4  # two per block + the final one, 8 per element: 480
MLP_GELU = 8 * 5 * 4  # 160
POSITION_AND_RESIDUALS = 4 * 4 + 2 * 20  # position add on 4 patches + 2 residuals on 5·4: 56


def assert_consistent(result):
    assert isinstance(result, FlopCount)
    assert set(result.breakdown) == set(CATEGORIES)
    assert sum(result.breakdown.values()) == result.total
    assert all(isinstance(v, int) and v >= 0 for v in result.breakdown.values())
    assert result.matmul_only <= result.breakdown["dense"]


def test_vit_fftnet_v1_by_hand():
    context_matmul = 2 * 4 * 4 + 2 * 4 * 6  # Dense(4->4), Dense(4 -> H·K_max = 6): 32 + 48
    context_bias = 4 + 6
    expected = {
        "dense": PATCH_MATMUL
        + PATCH_BIAS
        + MLP_MATMUL
        + MLP_BIAS
        + context_matmul
        + context_bias
        + HEAD_MATMUL
        + HEAD_BIAS,  # 1005
        "attention_scores": 0,
        "softmax": 0,
        "fft": 2 * 4 * RFFT_5,  # rfft + irfft of 5 points per channel: 232
        "spectral_filter": 2 * 3 * 4 + 1 * 2 * 3,  # multiply 2·K·D + W_base + tanh(m): 30
        "modrelu": 9 * 3 * 4,  # 108
        "layer_norm": LAYER_NORM,  # 480
        "activation": MLP_GELU + 8 * 4 + 5 * 6,  # + context GELU + tanh on H·K_max: 222
        "elementwise": POSITION_AND_RESIDUALS + 5 * 4,  # + context mean: 76
    }
    result = count_flops(TINY_VIT, TINY_SHAPE)
    assert_consistent(result)
    assert result.breakdown == expected
    assert result.total == 2153
    assert result.matmul_only == PATCH_MATMUL + MLP_MATMUL + context_matmul + HEAD_MATMUL == 936


def test_vit_fftnet_v2_by_hand():
    context_matmul = 2 * 4 * 4 + 2 * 4 * 12  # the second dense emits 2·H·K_max = 12
    context_bias = 4 + 12
    expected = {
        "dense": PATCH_MATMUL
        + PATCH_BIAS
        + MLP_MATMUL
        + MLP_BIAS
        + context_matmul
        + context_bias
        + HEAD_MATMUL
        + HEAD_BIAS,  # 1059
        "attention_scores": 0,
        "softmax": 0,
        "fft": 2 * 4 * RFFT_5,  # 232
        "spectral_filter": 2 * 3 * 4 + 3 * 2 * 3,  # multiply + W_base·(1+s), b+t: 42
        "modrelu": 8 * 3 * 4,  # magnitude machinery without ReLU: 96
        "layer_norm": LAYER_NORM,
        "activation": MLP_GELU + 8 * 4 + 8 * 3 * 4,  # + context GELU + GELU per bin: 288
        "elementwise": POSITION_AND_RESIDUALS + 5 * 4,  # 76
    }
    result = count_flops({**TINY_VIT, "variant": "v2"}, TINY_SHAPE)
    assert_consistent(result)
    assert result.breakdown == expected
    assert result.total == 2273


def test_vit_fnet_by_hand():
    expected = {
        "dense": PATCH_MATMUL + PATCH_BIAS + MLP_MATMUL + MLP_BIAS + HEAD_MATMUL + HEAD_BIAS,
        "attention_scores": 0,
        "softmax": 0,
        # over channels (5 vectors of 4) + over tokens (4 vectors of 5) + real part: 452
        "fft": 5 * CFFT_4 + 4 * CFFT_5 + 5 * 4,
        "spectral_filter": 0,
        "modrelu": 0,
        "layer_norm": LAYER_NORM,
        "activation": MLP_GELU,
        "elementwise": POSITION_AND_RESIDUALS,
    }
    result = count_flops({**TINY_VIT, "token_mixer": "fnet"}, TINY_SHAPE)
    assert_consistent(result)
    assert result.breakdown == expected
    assert result.total == 2063
    assert result.matmul_only == PATCH_MATMUL + MLP_MATMUL + HEAD_MATMUL


def test_vit_attention_by_hand():
    projections_matmul = 4 * (2 * 4 * 4 * 5)  # q, k, v, out: Dense(4 -> 4) over 5 tokens: 640
    projections_bias = 4 * (4 * 5)  # 80
    expected = {
        "dense": PATCH_MATMUL
        + PATCH_BIAS
        + MLP_MATMUL
        + MLP_BIAS
        + projections_matmul
        + projections_bias
        + HEAD_MATMUL
        + HEAD_BIAS,  # 1635
        "attention_scores": 2 * (2 * 5 * 5 * 4),  # QKᵀ and AV: 400
        "softmax": 5 * 2 * 5 * 5,  # 5·H·N·N: 250
        "fft": 0,
        "spectral_filter": 0,
        "modrelu": 0,
        "layer_norm": LAYER_NORM,
        "activation": MLP_GELU,
        "elementwise": POSITION_AND_RESIDUALS + 5 * 4,  # + the 1/√d query scale: 76
    }
    result = count_flops({**TINY_VIT, "token_mixer": "attention"}, TINY_SHAPE)
    assert_consistent(result)
    assert result.breakdown == expected
    assert result.total == 3001
    assert result.matmul_only == PATCH_MATMUL + MLP_MATMUL + projections_matmul + HEAD_MATMUL


def test_sequence_mean_pooling_and_resampled_filter_by_hand():
    # Filter defined on 8 tokens (K_max = 5), counted at 4 tokens (K = 3); no class token.
    config = {
        "family": "fftnet",
        "vocabulary_size": 50,
        "max_sequence_length": 8,
        "hidden_dim": 4,
        "num_layers": 1,
        "num_heads": 2,
        "mlp_ratio": 1.0,
        "pooling": "mean",
        "num_classes": 2,
    }
    mlp_matmul = 2 * (2 * 4 * 4 * 4)  # 256
    context_matmul = 2 * 4 * 4 + 2 * 4 * 10  # Dense(4 -> H·K_max = 10): 32 + 80
    head_matmul = 2 * 4 * 2  # 16
    expected = {
        "dense": mlp_matmul + 2 * 16 + context_matmul + 4 + 10 + head_matmul + 2,  # 432
        "attention_scores": 0,
        "softmax": 0,
        "fft": 2 * 4 * round(2.5 * 4 * 2),  # 160
        # W_base + tanh on H·K_max (10) + resampling the filter to H·K (3·6) + multiply (24)
        "spectral_filter": 10 + 3 * 2 * 3 + 2 * 3 * 4,  # 52
        "modrelu": 9 * 3 * 4,  # 108
        "layer_norm": 3 * 8 * 4 * 4,  # 384
        "activation": 8 * 16 + 8 * 4 + 5 * 10,  # 210
        # position add, two residuals, context mean, mean pooling: 16 each
        "elementwise": 16 + 2 * 16 + 16 + 16,  # 80
    }
    result = count_flops(config, (4,))
    assert_consistent(result)
    assert result.breakdown == expected
    assert result.total == 1426
    assert result.matmul_only == mlp_matmul + context_matmul + head_matmul


SEQUENCE_ATTENTION = {
    "family": "fftnet",
    "max_sequence_length": 16,
    "hidden_dim": 8,
    "num_layers": 1,
    "num_heads": 2,
    "token_mixer": "attention",
}


@pytest.mark.parametrize(
    ("settings", "tokens"),
    [
        ({"num_classes": 3}, 17),  # a classifier pools with "cls" by default
        ({"num_classes": 3, "pooling": "cls"}, 17),
        ({"num_classes": 3, "pooling": "mean"}, 16),
        ({}, 16),  # a backbone has no class token by default
        ({"class_token": True}, 17),
    ],
)
def test_sequence_class_token_adds_one_token(settings, tokens):
    result = count_flops({**SEQUENCE_ATTENTION, **settings}, (16,))
    assert result.breakdown["attention_scores"] == 2 * (2 * tokens * tokens * 8)


def test_backbone_has_no_head():
    classifier = count_flops(TINY_VIT, TINY_SHAPE)
    backbone = count_flops({k: v for k, v in TINY_VIT.items() if k != "num_classes"}, TINY_SHAPE)
    assert classifier.total - backbone.total == HEAD_MATMUL + HEAD_BIAS
    assert classifier.matmul_only - backbone.matmul_only == HEAD_MATMUL


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_matmul_only_excludes_ffts_scores_and_elementwise(variant):
    # 16×16 grey images, 4×4 patches: N = 17 tokens, D = 16, H = 4, K_max = 9, 2 layers.
    config = {
        **TINY_VIT,
        "image_size": 16,
        "hidden_dim": 16,
        "num_heads": 4,
        "num_layers": 2,
        "variant": variant,
    }
    counts = {
        mixer: count_flops({**config, "token_mixer": mixer}, (16, 16, 1))
        for mixer in ("fftnet", "fnet", "attention")
    }
    for result in counts.values():
        assert_consistent(result)
    base = counts["fnet"].matmul_only  # patch embedding, MLPs, head: FNet has no weights
    assert counts["fnet"].breakdown["fft"] > 0
    # attention adds its q, k, v, out projections, never the QKᵀ / AV products.
    assert counts["attention"].matmul_only - base == 2 * 4 * (2 * 16 * 16 * 17)
    assert counts["attention"].breakdown["attention_scores"] > 0
    # fftnet adds only its context MLP, run once per example; no FFT, no filter.
    outputs = 4 * 9 * (1 if variant == "v1" else 2)
    assert counts["fftnet"].matmul_only - base == 2 * (2 * 16 * 16 + 2 * 16 * outputs)
    # dense = matmul_only + one bias add per output element.
    for result in counts.values():
        assert result.breakdown["dense"] > result.matmul_only


def _long_sequence(mixer, length):
    return count_flops(
        {
            "family": "fftnet",
            "max_sequence_length": length,
            "hidden_dim": 8,
            "num_layers": 1,
            "num_heads": 2,
            "token_mixer": mixer,
            "pooling": "mean",
        },
        (length,),
    )


def test_attention_grows_quadratically():
    small, large = _long_sequence("attention", 4096), _long_sequence("attention", 8192)
    scores = small.breakdown["attention_scores"] + small.breakdown["softmax"]
    assert large.breakdown["attention_scores"] + large.breakdown["softmax"] == 4 * scores
    assert 3.9 < large.total / small.total <= 4.0


def test_fftnet_grows_as_n_log_n():
    small, large = _long_sequence("fftnet", 4096), _long_sequence("fftnet", 8192)
    assert large.breakdown["fft"] / small.breakdown["fft"] == pytest.approx(2 * 13 / 12)
    assert 2.0 < large.total / small.total < 2 * 13 / 12


def test_counting_at_another_image_size():
    at_16 = count_flops({**TINY_VIT, "image_size": 16}, (16, 16, 1))
    resampled = count_flops(TINY_VIT, (16, 16, 1))  # filter built for 5 tokens, run on 17
    # Only the context MLP width (H·K_max), its tanh/formation and the resampling differ.
    assert resampled.breakdown["fft"] == at_16.breakdown["fft"]
    assert resampled.breakdown["spectral_filter"] != at_16.breakdown["spectral_filter"]


def test_model_objects_dispatch_on_class_name():
    def fake(name, config):
        return type(name, (), {"get_config": lambda self: dict(config)})()

    config = {k: v for k, v in TINY_VIT.items() if k != "family"}
    assert count_flops(fake("FFTNetViTImageClassifier", config), TINY_SHAPE) == count_flops(
        TINY_VIT, TINY_SHAPE
    )
    backbone = {k: v for k, v in TINY_VIT.items() if k != "num_classes"}
    assert count_flops(fake("FFTNetViTBackbone", config), TINY_SHAPE) == count_flops(
        backbone, TINY_SHAPE
    )
    nested = {"backbone": {"class_name": "FFTNetViTBackbone", "config": config}, "num_classes": 3}
    assert count_flops(fake("FFTNetViTImageClassifier", nested), TINY_SHAPE) == count_flops(
        TINY_VIT, TINY_SHAPE
    )


def test_flop_table():
    presets = {
        "tiny": {"hidden_dim": 192, "num_layers": 12, "num_heads": 3, "patch_size": 16},
        "base": {"hidden_dim": 768, "num_layers": 12, "num_heads": 12, "patch_size": 16},
    }
    lines = flop_table(presets).splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("| preset |")
    cells = [float(c) for c in lines[3].strip("| ").split(" | ")[1:]]
    fftnet_total, fftnet_matmul, attention_total, attention_matmul = cells
    # Common counters: ViT-B/16 17.6 GMACs = 35.1 GFLOPs; without the score products 33.7.
    assert fftnet_matmul == pytest.approx(22.6, abs=0.1)
    assert 35.0 < attention_total < 37.0
    assert attention_matmul == pytest.approx(33.7, abs=0.1)
    assert fftnet_matmul < fftnet_total < attention_total


def test_unknown_family_raises():
    with pytest.raises(TypeError, match="'nope'"):
        count_flops({**TINY_VIT, "family": "nope"}, TINY_SHAPE)
    with pytest.raises(TypeError, match="family=None"):
        count_flops({k: v for k, v in TINY_VIT.items() if k != "family"}, TINY_SHAPE)


def test_unknown_class_raises():
    class ResNet50:
        def get_config(self):
            return {}

    with pytest.raises(TypeError, match="ResNet50"):
        count_flops(ResNet50(), TINY_SHAPE)
    with pytest.raises(TypeError, match="list"):
        count_flops([1, 2], TINY_SHAPE)


def test_missing_config_key_raises():
    with pytest.raises(TypeError, match="hidden_dim"):
        count_flops({k: v for k, v in TINY_VIT.items() if k != "hidden_dim"}, TINY_SHAPE)


@pytest.mark.parametrize(
    ("key", "value"),
    [("token_mixer", "conv"), ("variant", "v3"), ("num_heads", 3), ("mlp_ratio", 0)],
)
def test_bad_config_value_raises(key, value):
    with pytest.raises(ValueError, match=key):
        count_flops({**TINY_VIT, key: value}, TINY_SHAPE)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((10, 8, 1), r"\(10, 8, 1\)"),  # not a multiple of the patch size
        ((8, 8), r"\(8, 8\)"),  # no channel axis
        ((None, 8, 8, 1), r"\(None, 8, 8, 1\)"),  # a batch axis
        ((8, 8, 3), r"\(8, 8, 3\)"),  # other channels than the model's
        ((8, 0, 1), r"\(8, 0, 1\)"),
        (8, "input_shape=8"),
    ],
)
def test_bad_vit_input_shape_raises(shape, match):
    with pytest.raises(ValueError, match=match):
        count_flops(TINY_VIT, shape)


@pytest.mark.parametrize("shape", [(0,), (4, 4), (), ("4",)])
def test_bad_sequence_input_shape_raises(shape):
    config = {
        "family": "fftnet",
        "max_sequence_length": 8,
        "hidden_dim": 4,
        "num_layers": 1,
        "num_heads": 2,
    }
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(config, shape)


VIT_BACKBONE = {
    "image_size": 32,
    "patch_size": 8,
    "num_channels": 3,
    "hidden_dim": 32,
    "num_layers": 2,
    "num_heads": 4,
}
SEQUENCE_BACKBONE = {
    "vocabulary_size": 20,
    "max_sequence_length": 16,
    "hidden_dim": 16,
    "num_layers": 1,
    "num_heads": 2,
}
# (task class or None, backbone class, backbone arguments, task arguments, the dict form's
# family and defaults, input shape).
MODEL_CASES = [
    (
        "FFTNetViTImageClassifier",
        "FFTNetViTBackbone",
        VIT_BACKBONE,
        {"num_classes": 10},
        {"family": "fftnet_vit", "mlp_ratio": 4.0, "token_mixer": "fftnet", "variant": "v1"},
        (32, 32, 3),
    ),
    (
        "FFTNetViTImageClassifier",
        "FFTNetViTBackbone",
        {**VIT_BACKBONE, "token_mixer_kwargs": {"variant": "v2"}, "norm_first": True},
        {"num_classes": 10},
        {"family": "fftnet_vit", "mlp_ratio": 4.0},
        (32, 32, 3),
    ),
    (
        "FFTNetClassifier",
        "FFTNetBackbone",
        SEQUENCE_BACKBONE,
        {"num_classes": 5, "pooling": "mean"},
        {"family": "fftnet", "mlp_ratio": 4.0, "token_mixer": "fftnet", "variant": "v1"},
        (12,),
    ),
    (
        "FFTNetClassifier",
        "FFTNetBackbone",
        {**SEQUENCE_BACKBONE, "class_token": True, "token_mixer": "attention"},
        {"num_classes": 5},  # pooling "cls": the backbone has a class token
        {"family": "fftnet", "pooling": "cls"},
        (12,),
    ),
    (
        None,
        "FFTNetBackbone",
        {**SEQUENCE_BACKBONE, "class_token": True},
        {},
        {"family": "fftnet", "mlp_ratio": 4.0, "token_mixer": "fftnet", "variant": "v1"},
        (16,),
    ),
    (
        None,
        "FFTNetViTBackbone",
        {**VIT_BACKBONE, "token_mixer": "fnet"},
        {},
        {"family": "fftnet_vit"},
        (32, 32, 3),
    ),
]


@pytest.mark.parametrize(
    ("task", "backbone", "backbone_arguments", "task_arguments", "defaults", "shape"),
    MODEL_CASES,
)
def test_real_model_matches_dict_form(
    task, backbone, backbone_arguments, task_arguments, defaults, shape
):
    models = pytest.importorskip("spectralmix.models")
    model = getattr(models, backbone)(**backbone_arguments)
    if task is not None:
        model = getattr(models, task)(backbone=model, **task_arguments)
    expected = count_flops({**defaults, **backbone_arguments, **task_arguments}, shape)
    assert count_flops(model, shape) == expected


# --- mixer formulas from the registry --------------------------------------------------------


@pytest.mark.parametrize(
    ("flat", "nested"),
    [
        ({"variant": "v2"}, {"variant": "v2"}),
        ({"adaptive": False}, {"adaptive": False}),
        ({"variant": "v2", "adaptive": False}, {"variant": "v2", "adaptive": False}),
        ({"fft_impl": "dft"}, {}),  # how the FFT is computed does not change the count
    ],
)
def test_flat_mixer_keys_of_old_configs_count_as_token_mixer_kwargs(flat, nested):
    old = count_flops({**TINY_VIT, **flat}, TINY_SHAPE)
    assert old == count_flops({**TINY_VIT, "token_mixer_kwargs": nested}, TINY_SHAPE)
    assert_consistent(old)
    if nested:
        assert old != count_flops(TINY_VIT, TINY_SHAPE)


def test_v2_by_hand_equals_its_token_mixer_kwargs_form():
    nested = {**TINY_VIT, "token_mixer_kwargs": {"variant": "v2"}, "norm_first": True}
    assert count_flops(nested, TINY_SHAPE).total == 2273  # test_vit_fftnet_v2_by_hand


def _toy_mixer(declared=(), formula=True):
    import keras

    seen = []

    class FlopsToy(keras.layers.Layer):
        model_arguments = declared

        def __init__(self, scale=1, **kwargs):
            super().__init__(**kwargs)

        def call(self, inputs, mask=None, training=None):
            return inputs

    if formula:

        def count(tally, tokens, channels, arguments):
            seen.append((tokens, channels, dict(arguments)))
            tally.add("elementwise", arguments.get("scale", 1) * tokens * channels)

        FlopsToy.count_flops = staticmethod(count)
    return FlopsToy, seen


@pytest.fixture
def register():
    from spectralmix.registry import register_token_mixer, unregister_token_mixer

    names = []

    def add(name, cls):
        register_token_mixer(name)(cls)
        names.append(name)
        return name

    yield add
    for name in names:
        unregister_token_mixer(name)


def test_a_registered_mixers_own_formula_is_counted(register):
    toy, seen = _toy_mixer(declared=("num_heads", "max_sequence_length"))
    name = register("toy_flops_scaled", toy)
    config = {**TINY_VIT, "token_mixer": name, "token_mixer_kwargs": {"scale": 3}}
    result = count_flops(config, TINY_SHAPE)
    assert_consistent(result)
    # Called once per block with the declared model arguments, then token_mixer_kwargs.
    assert seen == [(TOKENS, CHANNELS, {"num_heads": 2, "max_sequence_length": 5, "scale": 3})]
    fnet = count_flops({**TINY_VIT, "token_mixer": "fnet"}, TINY_SHAPE)
    assert result.breakdown["fft"] == 0
    assert result.breakdown["elementwise"] == fnet.breakdown["elementwise"] + 3 * TOKENS * CHANNELS
    assert result.total == fnet.total - fnet.breakdown["fft"] + 3 * TOKENS * CHANNELS


def test_a_mixer_that_takes_no_model_arguments_gets_none(register):
    toy, seen = _toy_mixer()
    name = register("toy_flops_plain", toy)
    # 3 heads do not divide 4 channels: no matter to a mixer that takes no heads.
    count_flops({**TINY_VIT, "num_heads": 3, "token_mixer": name}, TINY_SHAPE)
    assert seen == [(TOKENS, CHANNELS, {})]


def test_a_mixer_without_a_formula_is_named(register):
    toy, _ = _toy_mixer(formula=False)
    name = register("toy_flops_unknown", toy)
    with pytest.raises(
        ValueError, match=r"'toy_flops_unknown' \(FlopsToy\) declares no FLOP formula"
    ):
        count_flops({**TINY_VIT, "token_mixer": name}, TINY_SHAPE)
    with pytest.raises(ValueError, match=r"count_flops\(tally, tokens, channels, arguments\)"):
        count_flops({**TINY_VIT, "token_mixer": name}, TINY_SHAPE)


def test_the_package_exposes_count_flops():
    import spectralmix

    assert spectralmix.count_flops is count_flops


def test_bad_token_mixer_kwargs_are_named():
    with pytest.raises(TypeError, match=r"token_mixer_kwargs=\['v2'\]"):
        count_flops({**TINY_VIT, "token_mixer_kwargs": ["v2"]}, TINY_SHAPE)


# --- parameters against length ------------------------------------------------------------

SEQUENCE = {
    "family": "fftnet",
    "vocabulary_size": 11,
    "hidden_dim": 8,
    "num_layers": 2,
    "num_heads": 2,
    "mlp_ratio": 1.5,
}
MIXER_KWARGS = {
    "fftnet": [{}, {"variant": "v2"}, {"adaptive": False}],
    "fnet": [{}],
    "gfnet": [{}],
    "hyena": [{"filter_order": 6, "causal": False}, {"order": 3, "filter_order": 4}],
    "attention": [{}, {"key_dim": 3}],
}


def _small_defaults(monkeypatch):
    """The default bounds made small, so that they act at lengths a test can build."""
    from spectralmix.layers import _checks
    from spectralmix.models.fftnet import fftnet_backbone

    monkeypatch.setattr(_checks, "DEFAULT_MAX_FILTER_BINS", 5)
    monkeypatch.setattr(fftnet_backbone, "DEFAULT_MAX_POSITIONS", 6)


@pytest.mark.parametrize(
    ("mixer", "kwargs"), [(m, k) for m, ks in MIXER_KWARGS.items() for k in ks]
)
@pytest.mark.parametrize("length", [7, 16])
@pytest.mark.parametrize("classifier", [False, True])
def test_count_parameters_is_the_built_models(monkeypatch, mixer, kwargs, length, classifier):
    from spectralmix.flops import count_parameters
    from spectralmix.models import FFTNetBackbone, FFTNetClassifier

    _small_defaults(monkeypatch)  # at 16 tokens: 5 bins (not 9) and 6 positions (not 16)
    config = {**SEQUENCE, "token_mixer": mixer, "token_mixer_kwargs": kwargs}
    arguments = {k: v for k, v in config.items() if k != "family"}
    backbone = FFTNetBackbone(max_sequence_length=length, **arguments)
    model = FFTNetClassifier(backbone, num_classes=3) if classifier else backbone
    assert count_parameters(model) == model.count_params()
    # From a dict, and at another length than the model's.
    dict_config = {**config, "max_sequence_length": 3, **({"num_classes": 3} if classifier else {})}
    if classifier:
        dict_config["pooling"] = model.pooling
        dict_config["class_token"] = False
    assert count_parameters(dict_config, length) == model.count_params()


def test_count_parameters_with_explicit_bins_and_positions():
    from spectralmix.flops import count_parameters
    from spectralmix.models import FFTNetBackbone

    arguments = {k: v for k, v in SEQUENCE.items() if k != "family"}
    backbone = FFTNetBackbone(max_sequence_length=20, filter_bins=4, num_positions=3, **arguments)
    assert count_parameters(backbone) == backbone.count_params()
    # By hand: embedding 11·8, positions 3·8, per block 2 LayerNorms (4·8), the mixer
    # (2·2·4 + 8·8 + 8 + 9·2·4) and the MLP (8·12 + 12 + 12·8 + 8), the final LayerNorm.
    mixer = 2 * 2 * 4 + 8 * 8 + 8 + 9 * 2 * 4
    block = 4 * 8 + mixer + 8 * 12 + 12 + 12 * 8 + 8
    assert count_parameters(backbone) == 11 * 8 + 3 * 8 + 2 * block + 2 * 8


def test_parameters_stay_bounded_with_the_defaults():
    from spectralmix.flops import count_parameters

    config = {**SEQUENCE, "vocabulary_size": 256, "hidden_dim": 64, "num_heads": 4}
    config["num_layers"], config["mlp_ratio"] = 4, 4.0
    for mixer in ("fftnet", "gfnet", "fnet", "hyena", "attention"):
        small = count_parameters({**config, "token_mixer": mixer}, 4096)
        large = count_parameters({**config, "token_mixer": mixer}, 1_048_576)
        assert large <= 2 * small, mixer
    # One weight per bin and position: grows with the length.
    per_bin = {**config, "filter_bins": 524_289, "num_positions": 1_048_576}
    assert count_parameters(per_bin, 1_048_576) == 629_313_200


def test_parameter_table():
    from spectralmix.flops import parameter_table

    table = parameter_table(lengths=(4096, 65536), mixers=("fftnet", "fnet"))
    lines = table.splitlines()
    assert lines[0].startswith("| mixer | tokens |")
    assert len(lines) == 2 + 4
    # fftnet at 65,536 tokens: per bin 2·4·32769 + 64·64 + 64 + 65·4·32769, default K = 2049.
    assert lines[3].startswith(f"| fftnet | 65,536 | {2 * 4 * 32769 + 4160 + 65 * 4 * 32769:,} |")
    assert "| 553,292 |" in lines[3]
    assert lines[4].startswith("| fnet | 4,096 | 0 | 0 |")


def test_parameter_command_prints_the_table(capsys):
    from spectralmix.flops import main, parameter_table

    main(["--parameters"])
    assert capsys.readouterr().out.strip() == parameter_table()
    with pytest.raises(SystemExit):
        main([])


def test_count_parameters_errors(register):
    from spectralmix.flops import count_parameters

    with pytest.raises(TypeError, match="fftnet_vit"):
        count_parameters(TINY_VIT)
    with pytest.raises(ValueError, match="sequence_length=0"):
        count_parameters({**SEQUENCE, "max_sequence_length": 8}, 0)
    toy, _ = _toy_mixer()
    name = register("toy_parameters_unknown", toy)
    config = {**SEQUENCE, "max_sequence_length": 8, "token_mixer": name}
    with pytest.raises(ValueError, match=r"'toy_parameters_unknown' \(FlopsToy\) declares no"):
        count_parameters(config)
