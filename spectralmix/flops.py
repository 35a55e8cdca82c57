"""Analytic FLOP counts for FFTNet, FNet and attention models, per example.

`count_flops(model_or_config, input_shape)` walks the architecture of an FFTNetViT or FFTNet
sequence model from its configuration (nothing is run; Keras is imported for the mixer
registry, no framework computes) and returns a
`FlopCount`: the FLOPs of ONE forward pass of ONE example at `input_shape`, split by category.

Conventions (every constant is a named module-level value below):

- A multiply-add counts 2 FLOPs; any other arithmetic operation counts 1. A dense or conv
  layer costs `2·in·out` per row for the matmul plus 1 bias add per output element.
- Inference only: dropout and drop path are identities (0). Padding-mask work (zeroing padded
  tokens, the sequence models carry a mask from `mask_zero`) is not counted, and means are
  counted as plain means. Embedding lookups, reshapes, transposes, concatenations (the class
  token) and casts count 0.
- Work that does not depend on the example is not counted: interpolating the position
  embeddings at a new image size, resampling the input-independent spectral bias.
- FFTs use the textbook estimates: a real-input FFT (or inverse) of length `L` costs
  `2.5·L·log2(L)`, a complex FFT `5·L·log2(L)`, rounded to an integer per transform. The
  orthonormal `1/√N` scale is taken as part of the transform.

Categories of `FlopCount.breakdown` (all always present, summing to `total`):

- `"dense"`: every Dense/Conv matmul (patch embedding, q/k/v/output projections, the MLPs, the
  spectral filter's context MLP, the head) and their bias adds.
- `"attention_scores"`: `QKᵀ` and `softmax·V`, `2·N·N·D` each over `N` tokens of `D` channels.
- `"softmax"`: 5 per attention score, `5·H·N·N` per layer.
- `"fft"`: FFTNet's rfft and irfft over the tokens, per channel; FNet's complex FFT over the
  channels (`N` vectors of length `D`), then over the tokens (`D` vectors of length `N`), plus
  1 per element to take the real part.
- `"spectral_filter"`: the filter multiply (a real scale of each complex bin, 2 per bin and
  channel; GFNet's complex product, 6), the filter formation per (head, bin) (v1
  `W_base + tanh(m)`: 1; v2 `W_base·(1 + s)` and `b + t`: 3) and, when the input length
  differs from the filter's, the linear resampling of the per-example filter (3 per
  (head, bin) and resampled tensor).
- `"modrelu"`: the magnitude activation per complex bin and channel: v1 modReLU 9
  (`re²+im²` 3, sqrt 1, `+b` 1, ReLU 1, divide 1, two scale multiplies 2); v2 8 (the shift
  add to the real part replaces the bias add, no ReLU; its GELU is under `"activation"`).
- `"layer_norm"`: 8 per element.
- `"activation"`: GELU 8 and tanh 5 per element.
- `"elementwise"`: residual adds, the position-embedding add, token means (the filter's context
  and mean pooling, `N·D` each: `(N-1)·D` adds and `D` divides) and attention's `1/√d` query
  scale (1 per query element).

`FlopCount.matmul_only` is what common counters (fvcore, ptflops, timm's tables, doubled from
MACs) report: the matmuls of the dense/conv layers only, without biases, FFTs, attention
scores or elementwise work. FFTNetViT-Base/16 at 224² gives about 22.6 G there (the attention
ViT-B/16: 33.7 G, or 35.1 G with the score products, the often quoted "17.6 GMACs").

Which models: a model object whose class is `FFTNetViTImageClassifier`, `FFTNetViTBackbone`,
`FFTNetClassifier` or `FFTNetBackbone` (configuration from `model.get_config()`), or a plain
dict `{"family": "fftnet_vit" | "fftnet", **config}` with the constructor arguments of those
classes; a dict with a `num_classes` describes a classifier, without one a backbone.

FFTNetViT (`input_shape = (height, width, channels)`): a `p×p` stride-`p` patch embedding (a
dense `p·p·C → D` per patch), the position-embedding add on the `P = (height/p)·(width/p)`
patches (resized, uncounted, at another image size), a class token (no position vector;
`N = P + 1` tokens), the blocks, a final LayerNorm over all tokens and (classifier) a
`Dense(D → num_classes)` on the class token. The spectral filter is defined on the token count
at `image_size`.

FFTNet sequence (`input_shape = (length,)`): the embedding lookup (0), a class token
(`N = length + 1`, else `N = length`), the position-embedding add on the `N` tokens, the
blocks, a final LayerNorm, then (classifier) mean pooling (`pooling="mean"`) and a
`Dense(D → num_classes)`. The class token is there when `class_token=True` (the backbone's
argument) or, without that key, for a classifier with `pooling="cls"` (the default). The
spectral filter is defined on `max_sequence_length` tokens (+1 with a class token).

Each block: two LayerNorms, the token mixer, two residual adds and the MLP
`Dense(D → round(D·mlp_ratio)) → GELU → Dense(→ D)`. Each mixer's formula is declared next to
the mixer, as its class's `count_flops(tally, tokens, channels, arguments)`, which adds to a
`Tally` (a mixer without one makes `count_flops` raise, naming it):

- `"fftnet"` (`AdaptiveSpectralFilter.count_flops`): the context mean (`N·D`), the context
  MLP `Dense(D → D) → GELU → Dense(D → H·K_max)` (`2·H·K_max` outputs in v2) on one vector,
  tanh (v1), rfft, the filter, the magnitude activation, irfft; `K = N//2 + 1` bins, `K_max`
  those of the filter's length.
- `"fnet"` (`FourierMixing.count_flops`): the real part of the complex 2-D FFT, no weights.
- `"attention"` (`SelfAttention.count_flops`): q, k, v and output projections
  `Dense(D → D)`, the query scale, the scores, the softmax and the weighted sum of the values.

Examples:
    >>> config = {"family": "fftnet_vit", "image_size": 224, "patch_size": 16,
    ...           "num_channels": 3, "hidden_dim": 768, "num_layers": 12, "num_heads": 12,
    ...           "num_classes": 1000}
    >>> result = count_flops(config, (224, 224, 3))
    >>> round(result.matmul_only / 1e9, 1)
    22.6
    >>> sum(result.breakdown.values()) == result.total
    True
    >>> attention = count_flops({**config, "token_mixer": "attention"}, (224, 224, 3))
    >>> round(attention.total / 1e9, 1)
    35.3
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spectralmix.validation import choice, positive_int

__all__ = [
    "CATEGORIES",
    "FlopCount",
    "Tally",
    "count_flops",
    "count_parameters",
    "fft_cost",
    "flop_table",
    "parameter_table",
]

# --- Per-operation costs (FLOPs). ---------------------------------------------------------
#: One multiply-add (the unit of a matmul) counts as a multiply and an add.
MULTIPLY_ADD = 2
#: A bias add: 1 per output element of a dense/conv layer.
BIAS_ADD = 1
#: LayerNorm per element: mean (1), centre (1), square (1), variance (1), normalise (1),
#: γ (1), β (1), and the per-row ε-add and rsqrt rounded up to 1.
LAYER_NORM_PER_ELEMENT = 8
#: GELU per element (erf or tanh form alike): the usual polynomial/transcendental estimate.
GELU_PER_ELEMENT = 8
#: tanh per element (the v1 filter modulation).
TANH_PER_ELEMENT = 5
#: Softmax per score: max-subtract, exp, sum, divide, with the max search rounded in: 5.
SOFTMAX_PER_SCORE = 5
#: A real-input FFT (rfft) or its inverse (irfft) of length L: 2.5·L·log2(L).
REAL_FFT_COEFFICIENT = 2.5
#: A complex FFT of length L: 5·L·log2(L).
COMPLEX_FFT_COEFFICIENT = 5.0
#: Taking the real part of FNet's complex output: 1 per element.
REAL_PART_PER_ELEMENT = 1
#: The filter multiply: a real scale of a complex bin, 2 per bin and channel.
FILTER_MULTIPLY_PER_BIN = 2
#: A complex product per bin and channel (GFNet's filter): 4 multiplies and 2 adds.
COMPLEX_MULTIPLY_PER_BIN = 6
#: v1 filter formation `W = W_base + tanh(m)`: 1 add per (head, bin); the tanh is an activation.
FILTER_FORMATION_V1 = 1
#: v2 filter formation `W_base·(1 + s)` (2) and the shift `b + t` (1), per (head, bin).
FILTER_FORMATION_V2 = 3
#: Linear resampling of a per-bin tensor to another length: `v0·(1-w) + v1·w`, per (head, bin).
RESAMPLE_PER_BIN = 3
#: v1 modReLU per complex bin and channel: re²+im² (3), sqrt (1), +bias (1), ReLU (1),
#: divide (1), scaling re and im (2).
MODRELU_PER_BIN = 9
#: v2 magnitude activation per complex bin and channel, without its GELU: shift add to the real
#: part (1), re²+im² (3), sqrt (1), divide (1), scaling re and im (2).
MAGNITUDE_GELU_PER_BIN = 8
#: Residual add: 1 per element.
RESIDUAL_ADD = 1
#: Position-embedding add: 1 per element.
POSITION_ADD = 1
#: Mean over tokens: (N-1) adds and 1 divide per channel, i.e. 1 per element.
MEAN_PER_ELEMENT = 1
#: Attention's 1/√d query scale: 1 per query element.
QUERY_SCALE = 1

#: The keys of `FlopCount.breakdown`, in report order.
CATEGORIES = (
    "dense",
    "attention_scores",
    "softmax",
    "fft",
    "spectral_filter",
    "modrelu",
    "layer_norm",
    "activation",
    "elementwise",
)

FAMILIES = ("fftnet_vit", "fftnet")
POOLINGS = ("cls", "mean")

# Model class name -> (family, whether it is a classifier with a head).
_MODEL_CLASSES = {
    "FFTNetViTImageClassifier": ("fftnet_vit", True),
    "FFTNetViTBackbone": ("fftnet_vit", False),
    "FFTNetClassifier": ("fftnet", True),
    "FFTNetBackbone": ("fftnet", False),
}


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one forward pass of one example (a multiply-add counts 2).

    Attributes:
        total: all counted FLOPs.
        breakdown: FLOPs per category (the keys of `CATEGORIES`), summing to `total`.
        matmul_only: the dense/conv matmuls alone, without biases: what common counters report.
    """

    total: int
    breakdown: dict[str, int] = field(default_factory=dict)
    matmul_only: int = 0

    @property
    def gflops(self) -> float:
        """`total` in GFLOPs (1e9)."""
        return self.total / 1e9


class Tally:
    """Accumulates FLOPs per category, with the matmul part of `"dense"` kept apart."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(CATEGORIES, 0)
        self.matmul = 0

    def add(self, category: str, flops: int) -> None:
        self.counts[category] += int(flops)

    def dense(self, rows: int, units_in: int, units_out: int) -> None:
        matmul = MULTIPLY_ADD * rows * units_in * units_out
        self.matmul += matmul
        self.add("dense", matmul + BIAS_ADD * rows * units_out)

    def layer_norm(self, rows: int, channels: int) -> None:
        self.add("layer_norm", LAYER_NORM_PER_ELEMENT * rows * channels)

    def result(self) -> FlopCount:
        return FlopCount(
            total=sum(self.counts.values()), breakdown=dict(self.counts), matmul_only=self.matmul
        )


def fft_cost(coefficient: float, length: int) -> int:
    """One transform of `length` points: `coefficient·L·log2(L)`, rounded (0 for L = 1)."""
    return round(coefficient * length * math.log2(length))


# --- Configuration checks. ----------------------------------------------------------------


def _require(config: Mapping[str, Any], key: str, family: str) -> Any:
    if key not in config:
        raise TypeError(
            f"A `{family}` configuration needs `{key}`. Received keys: {sorted(config)}"
        )
    return config[key]


def _shape(input_shape: Any, rank: int, what: str) -> tuple[int, ...]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (
        shape is None
        or len(shape) != rank
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape)
    ):
        raise ValueError(
            f"`input_shape` must be {what} of positive integers, without the batch axis. "
            f"Received: input_shape={input_shape!r}"
        )
    return shape


def _block_config(config: Mapping[str, Any], family: str) -> dict[str, Any]:
    """The per-block settings shared by both families, checked. Flat mixer arguments of
    spectralmix 0.1 configs (`variant`, `adaptive`, ...) are read as `token_mixer_kwargs`."""
    from spectralmix.models.base import upgrade_config
    from spectralmix.registry import get_token_mixer, mixer_arguments

    config = upgrade_config(dict(config))
    hidden_dim = positive_int("hidden_dim", _require(config, "hidden_dim", family))
    num_heads = positive_int("num_heads", _require(config, "num_heads", family))
    token_mixer = get_token_mixer(config.get("token_mixer", "fftnet")).token_mixer_name
    token_mixer_kwargs = config.get("token_mixer_kwargs") or {}
    mlp_ratio = config.get("mlp_ratio", 4.0)
    if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float)) or mlp_ratio <= 0:
        raise ValueError(
            f"`mlp_ratio` must be a positive number. Received: mlp_ratio={mlp_ratio!r}"
        )
    heads = mixer_arguments(token_mixer, token_mixer_kwargs, num_heads=num_heads).get("num_heads")
    if heads is not None and hidden_dim % heads:
        raise ValueError(
            f"`hidden_dim` must be divisible by `num_heads`. "
            f"Received: hidden_dim={hidden_dim}, num_heads={heads}"
        )
    return {
        "hidden_dim": hidden_dim,
        "num_layers": positive_int("num_layers", _require(config, "num_layers", family)),
        "num_heads": num_heads,
        "mlp_hidden": max(1, round(hidden_dim * mlp_ratio)),
        "token_mixer": token_mixer,
        "token_mixer_kwargs": token_mixer_kwargs,
    }


def _num_classes(config: Mapping[str, Any], family: str, classifier: bool | None) -> int | None:
    """The head width, or None for a backbone (`classifier=None`: decided by the dict)."""
    if classifier is False:
        return None
    value = config.get("num_classes")
    if value is None:
        if classifier:
            raise TypeError(f"A `{family}` classifier needs `num_classes`. Received: None")
        return None
    return positive_int("num_classes", value)


# --- The architecture. --------------------------------------------------------------------


def _mixer_arguments(block: dict[str, Any], filter_length: int) -> dict[str, Any]:
    """The mixer's constructor arguments in a model of `block`'s settings."""
    from spectralmix.registry import mixer_arguments

    return mixer_arguments(
        block["token_mixer"],
        block["token_mixer_kwargs"],
        num_heads=block["num_heads"],
        max_sequence_length=filter_length,
        filter_bins=block.get("filter_bins"),
    )


def _mixer_flops(tally: Tally, tokens: int, block: dict[str, Any], filter_length: int) -> None:
    """The mixer's own formula (its `count_flops`, declared next to the mixer)."""
    from spectralmix.registry import get_token_mixer

    name = block["token_mixer"]
    mixer = get_token_mixer(name)
    formula = getattr(mixer, "count_flops", None)
    if formula is None:
        raise ValueError(
            f"Token mixer {name!r} ({mixer.__name__}) declares no FLOP formula: give its class "
            "a `count_flops(tally, tokens, channels, arguments)` static method"
        )
    formula(tally, tokens, block["hidden_dim"], _mixer_arguments(block, filter_length))


def _encoder(
    tally: Tally, positions: int, tokens: int, block: dict[str, Any], filter_length: int
) -> None:
    """Position-embedding add (on `positions` tokens), the blocks and the final LayerNorm."""
    channels = block["hidden_dim"]
    tally.add("elementwise", POSITION_ADD * positions * channels)
    for _ in range(block["num_layers"]):
        tally.layer_norm(tokens, channels)
        _mixer_flops(tally, tokens, block, filter_length)
        tally.add("elementwise", RESIDUAL_ADD * tokens * channels)
        tally.layer_norm(tokens, channels)
        tally.dense(tokens, channels, block["mlp_hidden"])
        tally.add("activation", GELU_PER_ELEMENT * tokens * block["mlp_hidden"])
        tally.dense(tokens, block["mlp_hidden"], channels)
        tally.add("elementwise", RESIDUAL_ADD * tokens * channels)
    tally.layer_norm(tokens, channels)


def _count_vit(config: Mapping[str, Any], input_shape: Any, classifier: bool | None) -> FlopCount:
    family = "fftnet_vit"
    block = _block_config(config, family)
    image_size = positive_int("image_size", _require(config, "image_size", family))
    patch = positive_int("patch_size", _require(config, "patch_size", family))
    channels_in = positive_int("num_channels", config.get("num_channels", 3))
    num_classes = _num_classes(config, family, classifier)
    height, width, channels = _shape(input_shape, 3, "(height, width, channels)")
    if height % patch or width % patch:
        raise ValueError(
            f"The image height and width must be multiples of `patch_size={patch}`. "
            f"Received: input_shape={tuple(input_shape)!r}"
        )
    if channels != channels_in:
        raise ValueError(
            f"The model takes `num_channels={channels_in}` channels. "
            f"Received: input_shape={tuple(input_shape)!r}"
        )
    if image_size % patch:
        raise ValueError(
            f"`image_size` must be a multiple of `patch_size={patch}`. "
            f"Received: image_size={image_size!r}"
        )
    patches = (height // patch) * (width // patch)
    tokens = patches + 1
    filter_length = (image_size // patch) ** 2 + 1

    tally = Tally()
    tally.dense(patches, patch * patch * channels, block["hidden_dim"])
    _encoder(tally, patches, tokens, block, filter_length)
    if num_classes is not None:
        tally.dense(1, block["hidden_dim"], num_classes)  # on the class token only
    return tally.result()


def _count_sequence(
    config: Mapping[str, Any], input_shape: Any, classifier: bool | None
) -> FlopCount:
    family = "fftnet"
    block = _block_config(config, family)
    max_length = positive_int(
        "max_sequence_length", _require(config, "max_sequence_length", family)
    )
    num_classes = _num_classes(config, family, classifier)
    # The model defaults: a classifier pools with "cls"; a backbone has no class token.
    pooling = choice("pooling", config.get("pooling", "cls"), POOLINGS)
    default_class_token = num_classes is not None and pooling == "cls"
    class_token = config.get("class_token", default_class_token)
    if not isinstance(class_token, bool):
        raise ValueError(f"`class_token` must be a bool. Received: class_token={class_token!r}")
    (length,) = _shape(input_shape, 1, "(length,)")
    tokens = length + int(class_token)
    filter_length = max_length + int(class_token)
    block["filter_bins"] = config.get("filter_bins")

    tally = Tally()
    _encoder(tally, tokens, tokens, block, filter_length)
    if num_classes is not None:
        if pooling == "mean":
            tally.add("elementwise", MEAN_PER_ELEMENT * tokens * block["hidden_dim"])
        tally.dense(1, block["hidden_dim"], num_classes)
    return tally.result()


_COUNTERS = {"fftnet_vit": _count_vit, "fftnet": _count_sequence}


def _resolve(model_or_config: Any) -> tuple[str, Mapping[str, Any], bool | None]:
    """`(family, flat config, classifier?)` of a model object or a config dict."""
    if isinstance(model_or_config, Mapping):
        family = model_or_config.get("family")
        if family not in FAMILIES:
            raise TypeError(
                f"A configuration dict needs `family` in {list(FAMILIES)}. "
                f"Received: family={family!r}"
            )
        return family, model_or_config, None
    name = type(model_or_config).__name__
    if name not in _MODEL_CLASSES or not hasattr(model_or_config, "get_config"):
        raise TypeError(
            f"count_flops takes a model of class {sorted(_MODEL_CLASSES)} or a config dict. "
            f"Received: an object of class {name}"
        )
    family, classifier = _MODEL_CLASSES[name]
    config = dict(model_or_config.get_config())
    backbone = config.pop("backbone", None)
    if isinstance(backbone, Mapping):  # a task model that serialises its backbone nested
        inner = backbone.get("config", backbone)
        config = {**inner, **config}
    return family, config, classifier


def count_flops(model_or_config: Any, input_shape: Sequence[int]) -> FlopCount:
    """FLOPs of one forward pass of one example (batch excluded; a multiply-add counts 2).

    See the module docstring for exactly what is counted.

    Args:
        model_or_config: an `FFTNetViTImageClassifier`, `FFTNetViTBackbone`,
            `FFTNetClassifier` or `FFTNetBackbone`, or a dict
            `{"family": "fftnet_vit" | "fftnet", **constructor_arguments}` (with
            `num_classes` for a classifier, without for a backbone).
        input_shape: `(height, width, channels)` for FFTNetViT, `(length,)` for FFTNet
            sequence models; no batch axis.

    Returns:
        A `FlopCount` with `total`, `breakdown` (per category) and `matmul_only`.

    Raises:
        TypeError: an unknown model class, family, or a missing configuration key.
        ValueError: a bad `input_shape` (wrong rank, not a multiple of the patch size, other
            channels) or a bad configuration value.

    Examples:
        >>> config = {"family": "fftnet", "vocabulary_size": 100, "max_sequence_length": 64,
        ...           "hidden_dim": 32, "num_layers": 2, "num_heads": 4, "pooling": "mean",
        ...           "num_classes": 10}
        >>> result = count_flops(config, (64,))
        >>> result.breakdown["attention_scores"], result.breakdown["fft"] > 0
        (0, True)
    """
    family, config, classifier = _resolve(model_or_config)
    return _COUNTERS[family](config, input_shape, classifier)


def flop_table(
    presets: Mapping[str, Mapping[str, Any]],
    input_shape: Sequence[int] = (224, 224, 3),
    num_classes: int = 1000,
) -> str:
    """A markdown table of FFTNet vs attention GFLOPs for FFTNetViT presets.

    Each preset is an FFTNetViT configuration (a dict of constructor arguments, or a dict with
    such a dict under `"config"`); `family="fftnet_vit"`, `image_size` from `input_shape`,
    `num_channels=3` and `num_classes` are filled in where missing. Each row counts the
    preset with `token_mixer="fftnet"` and with `token_mixer="attention"` at `input_shape`.

    Examples:
        >>> print(flop_table({"base": {"hidden_dim": 768, "num_layers": 12, "num_heads": 12,
        ...                            "patch_size": 16, "mlp_ratio": 4.0}}))
        | preset | FFTNet GFLOPs | FFTNet matmul-only GFLOPs | attention GFLOPs | attention matmul-only GFLOPs |
        |---|---:|---:|---:|---:|
        | base | 22.76 | 22.58 | 35.27 | 33.70 |
    """  # noqa: E501
    header = (
        "| preset | FFTNet GFLOPs | FFTNet matmul-only GFLOPs | attention GFLOPs "
        "| attention matmul-only GFLOPs |"
    )
    lines = [header, "|---|---:|---:|---:|---:|"]
    for name, preset in presets.items():
        inner = preset.get("config", preset)
        config = {
            "family": "fftnet_vit",
            "image_size": input_shape[0],
            "num_channels": input_shape[-1],
            "num_classes": num_classes,
            **inner,
        }
        fftnet = count_flops({**config, "token_mixer": "fftnet"}, input_shape)
        attention = count_flops({**config, "token_mixer": "attention"}, input_shape)
        cells = [fftnet.total, fftnet.matmul_only, attention.total, attention.matmul_only]
        lines.append(f"| {name} | " + " | ".join(f"{c / 1e9:.2f}" for c in cells) + " |")
    return "\n".join(lines)


# --- Parameters against length. -----------------------------------------------------------

#: The mixers and lengths of `parameter_table` (and of docs/layers.md, "Parameters against
#: length").
PARAMETER_TABLE_MIXERS = ("fftnet", "fnet", "gfnet", "hyena", "attention")
PARAMETER_TABLE_LENGTHS = (4096, 65536, 1048576)


def _mixer_parameters(block: dict[str, Any], filter_length: int) -> int:
    """The mixer's own count (its `count_parameters`, declared next to the mixer)."""
    from spectralmix.registry import get_token_mixer

    name = block["token_mixer"]
    mixer = get_token_mixer(name)
    formula = getattr(mixer, "count_parameters", None)
    if formula is None:
        raise ValueError(
            f"Token mixer {name!r} ({mixer.__name__}) declares no parameter count: give its "
            "class a `count_parameters(channels, arguments)` static method"
        )
    return int(formula(block["hidden_dim"], _mixer_arguments(block, filter_length)))


def count_parameters(model_or_config: Any, sequence_length: int | None = None) -> int:
    """The number of weights of an FFTNet sequence model, without building it.

    The model's configuration with `max_sequence_length = sequence_length` (default: its
    own) is counted from the shapes its layers would build: the token embedding
    (`vocabulary_size·D`), the class token (`D`), the position table
    (`num_positions·D`, `num_positions` defaulting to `min(tokens, 4096)`), per block two
    LayerNorms (`4·D`), the mixer (its class's `count_parameters(channels, arguments)`) and the
    MLP (`2·D·M + M + D`), the final LayerNorm (`2·D`) and, for a classifier, the head
    (`D·num_classes + num_classes`). Equal to `model.count_params()` of the built model.

    Args:
        model_or_config: an `FFTNetClassifier` or `FFTNetBackbone`, or a dict
            `{"family": "fftnet", **constructor_arguments}` (as for `count_flops`).
        sequence_length: the `max_sequence_length` to count the model at. Defaults to the
            configuration's.

    Examples:
        >>> config = {"family": "fftnet", "vocabulary_size": 256, "max_sequence_length": 4096,
        ...           "hidden_dim": 64, "num_layers": 4, "num_heads": 4}
        >>> count_parameters(config), count_parameters(config, 1_048_576)
        (2625200, 2625200)
        >>> count_parameters({**config, "filter_bins": 524289, "num_positions": 1_048_576},
        ...                  1_048_576)
        629313200
    """
    family, config, classifier = _resolve(model_or_config)
    if family != "fftnet":
        raise TypeError(
            f"count_parameters counts FFTNet sequence models (family 'fftnet'). "
            f"Received: family={family!r}"
        )
    config = dict(config)
    if sequence_length is not None:
        config["max_sequence_length"] = positive_int("sequence_length", sequence_length)
    block = _block_config(config, family)
    block["filter_bins"] = config.get("filter_bins")
    channels = block["hidden_dim"]
    max_length = positive_int(
        "max_sequence_length", _require(config, "max_sequence_length", family)
    )
    num_classes = _num_classes(config, family, classifier)
    pooling = choice("pooling", config.get("pooling", "cls"), POOLINGS)
    class_token = bool(config.get("class_token", num_classes is not None and pooling == "cls"))
    tokens = max_length + int(class_token)
    positions = config.get("num_positions") or min(tokens, _default_max_positions())
    vocabulary = positive_int("vocabulary_size", _require(config, "vocabulary_size", family))

    count = vocabulary * channels + int(class_token) * channels + positions * channels
    per_block = 2 * 2 * channels + 2 * channels * block["mlp_hidden"]
    per_block += block["mlp_hidden"] + channels + _mixer_parameters(block, tokens)
    count += block["num_layers"] * per_block + 2 * channels
    if num_classes is not None:
        count += channels * num_classes + num_classes
    return count


def _default_max_positions() -> int:
    from spectralmix.models.fftnet.fftnet_backbone import DEFAULT_MAX_POSITIONS

    return DEFAULT_MAX_POSITIONS


def parameter_table(
    lengths: Sequence[int] = PARAMETER_TABLE_LENGTHS,
    mixers: Sequence[str] = PARAMETER_TABLE_MIXERS,
    hidden_dim: int = 64,
    num_heads: int = 4,
    num_layers: int = 4,
    vocabulary_size: int = 256,
) -> str:
    """A markdown table of parameters against length, per mixer: the mixer alone and a
    `num_layers`-block `FFTNetBackbone`, each with one weight per frequency bin and position
    ("per bin": `filter_bins = N // 2 + 1`, `num_positions = N`) and with the defaults.

    Examples:
        >>> print(parameter_table(lengths=(4096, 1048576), mixers=("gfnet",)))
        | mixer | tokens | mixer, per bin | mixer, default | backbone, per bin | backbone, default |
        |---|---:|---:|---:|---:|---:|
        | gfnet | 4,096 | 262,272 | 262,272 | 1,461,120 | 1,461,120 |
        | gfnet | 1,048,576 | 67,108,992 | 262,272 | 335,694,720 | 1,461,120 |
    """
    lines = [
        "| mixer | tokens | mixer, per bin | mixer, default | backbone, per bin "
        "| backbone, default |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mixer in mixers:
        for length in lengths:
            config = {
                "family": "fftnet",
                "vocabulary_size": vocabulary_size,
                "max_sequence_length": length,
                "hidden_dim": hidden_dim,
                "num_layers": num_layers,
                "num_heads": num_heads,
                "token_mixer": mixer,
            }
            per_bin = {**config, "filter_bins": length // 2 + 1, "num_positions": length}
            block = {**_block_config(config, "fftnet"), "filter_bins": None}
            cells = [
                _mixer_parameters({**block, "filter_bins": length // 2 + 1}, length),
                _mixer_parameters(block, length),
                count_parameters(per_bin),
                count_parameters(config),
            ]
            lines.append(f"| {mixer} | {length:,} | " + " | ".join(f"{c:,}" for c in cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m spectralmix.flops --parameters`: prints `parameter_table()`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m spectralmix.flops")
    parser.add_argument(
        "--parameters",
        action="store_true",
        help="print the table of parameters against length (docs/layers.md)",
    )
    args = parser.parse_args(argv)
    if not args.parameters:
        parser.error("nothing to print: pass --parameters")
    print(parameter_table())


if __name__ == "__main__":
    main()
