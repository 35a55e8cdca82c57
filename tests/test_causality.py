"""Causality, for every registered mixer that says it is causal and for the causal language
model: changing the tokens after position `t` changes no output at or before `t`. The same check
run on the bidirectional mixers must fail, so it can fail."""

import numpy as np
import pytest

from spectralmix.models import FFTNetBackbone, FFTNetCausalLM, causal_mixer_kwargs
from spectralmix.models.fftnet.fftnet_causal_lm import causal_token_mixers
from spectralmix.registry import get_token_mixer, mixer_arguments, takes_argument
from spectralmix.registry import token_mixer_names as registered_names
from tests.helpers import to_numpy
from tests.tolerances import TOLERANCES

#: 16 tokens: also a square grid, for the 2-D mixers (gfnet_2d).
BATCH, LENGTH, CHANNELS, HEADS = 2, 16, 8, 2
#: Every position checked: the first, one in the middle, and the last one that has a later token.
POSITIONS = (0, 1, LENGTH // 2, LENGTH - 2)

CAUSAL = causal_token_mixers()
#: (name, causal argument): the mixers that can never be causal, and the causal-capable ones
#: built with causal=False.
BIDIRECTIONAL = [(name, None) for name in registered_names() if name not in CAUSAL] + [
    (name, False) for name in CAUSAL if takes_argument(get_token_mixer(name), "causal")
]


def _mixer(name, causal):
    own = {} if causal is None else {"causal": causal}
    arguments = mixer_arguments(name, own, num_heads=HEADS, max_sequence_length=LENGTH)
    layer = get_token_mixer(name)(**arguments)
    layer.build((None, LENGTH, CHANNELS))
    return layer


def largest_earlier_change(function, inputs, rng, perturb):
    """For each `t` of POSITIONS: the largest change of `function`'s outputs at positions `≤ t`
    when the inputs after `t` are replaced (by `perturb`), relative to the outputs' largest
    entry; the worst over the positions."""
    base = to_numpy(function(inputs))
    scale = max(1.0, float(np.abs(base).max()))
    worst = 0.0
    for t in POSITIONS:
        changed = inputs.copy()
        changed[:, t + 1 :] = perturb(rng, changed[:, t + 1 :].shape)
        moved = to_numpy(function(changed))[:, : t + 1] - base[:, : t + 1]
        worst = max(worst, float(np.abs(moved).max()) / scale)
    return worst


def _features(rng, shape):
    return rng.standard_normal(shape).astype("float32")


def test_the_causal_mixers_are_read_from_the_registry():
    assert "attention" in CAUSAL
    assert "fftnet" not in CAUSAL
    assert "fnet" not in CAUSAL
    assert ("attention", False) in BIDIRECTIONAL
    assert ("fftnet", None) in BIDIRECTIONAL


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_mixer_outputs_never_depend_on_later_tokens(rng, name):
    mixer = _mixer(name, True if takes_argument(get_token_mixer(name), "causal") else None)
    assert mixer.causal is True
    x = _features(rng, (BATCH, LENGTH, CHANNELS))
    assert largest_earlier_change(mixer, x, rng, _features) <= TOLERANCES["causality"]


@pytest.mark.parametrize(("name", "causal"), BIDIRECTIONAL)
def test_bidirectional_mixers_fail_the_same_check(rng, name, causal):
    mixer = _mixer(name, causal)
    assert not getattr(mixer, "causal", False)
    x = _features(rng, (BATCH, LENGTH, CHANNELS))
    assert largest_earlier_change(mixer, x, rng, _features) > 100 * TOLERANCES["causality"]


def _lm(name, vocabulary_size=20):
    backbone = FFTNetBackbone(
        vocabulary_size=vocabulary_size,
        max_sequence_length=LENGTH,
        hidden_dim=CHANNELS,
        num_layers=2,
        num_heads=HEADS,
        token_mixer=name,
        token_mixer_kwargs=causal_mixer_kwargs(name),
        norm_first=True,
    )
    return FFTNetCausalLM(backbone=backbone)


def _token_ids(rng, shape):
    return rng.integers(1, 20, shape).astype("int32")


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_lm_logits_never_depend_on_later_tokens(rng, name):
    lm = _lm(name)
    ids = _token_ids(rng, (BATCH, LENGTH))
    assert largest_earlier_change(lm, ids, rng, _token_ids) <= TOLERANCES["causality"]


def test_the_model_level_check_fails_on_a_bidirectional_backbone(rng):
    """The same check on a backbone with bidirectional attention (which FFTNetCausalLM refuses)."""
    backbone = FFTNetBackbone(
        vocabulary_size=20,
        max_sequence_length=LENGTH,
        hidden_dim=CHANNELS,
        num_layers=2,
        num_heads=HEADS,
        token_mixer="attention",
        norm_first=True,
    )
    ids = _token_ids(rng, (BATCH, LENGTH))
    assert largest_earlier_change(backbone, ids, rng, _token_ids) > 100 * TOLERANCES["causality"]
