"""`spectralmix.registry`, the framework-free token-mixer registry: what it imports, how the
built-ins resolve, which arguments a mixer gets, and what it refuses.

Registering and using mixers in blocks and models is tested in `tests/layers/test_registry.py`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import keras
import pytest

from spectralmix import registry
from spectralmix.registry import (
    BUILT_IN,
    MODEL_ARGUMENTS,
    get_token_mixer,
    mixer_arguments,
    register_token_mixer,
    token_mixer_kwargs_dict,
    token_mixer_names,
    unregister_token_mixer,
)

FRAMEWORKS = ("keras", "jax", "tensorflow", "torch")


def _run(code: str) -> str:
    env = {**os.environ, "KERAS_BACKEND": keras.config.backend()}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_importing_the_registry_loads_no_keras():
    out = _run(
        "import sys\n"
        "from spectralmix import registry\n"
        "names = registry.token_mixer_names()\n"
        "registry.mixer_arguments  # noqa\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})\n"
        "assert not loaded, loaded\n"
        "assert not any(m.startswith('spectralmix.layers') for m in sys.modules)\n"
        "print(','.join(names))\n"
    )
    assert out.strip() == ",".join(BUILT_IN)


def test_built_ins_are_imported_on_first_use():
    out = _run(
        "import sys\n"
        "from spectralmix import registry\n"
        "assert all(registry._TOKEN_MIXERS[n] is None for n in registry.BUILT_IN)\n"
        "mixer = registry.get_token_mixer('fnet')\n"
        "assert 'keras' in sys.modules\n"
        "assert registry._TOKEN_MIXERS['fnet'] is mixer\n"
        "assert registry.get_token_mixer('fnet') is mixer\n"
        "assert registry._TOKEN_MIXERS['attention'] is None  # not resolved yet\n"
        "print(mixer.__module__, mixer.__name__, mixer.token_mixer_name)\n"
    )
    assert out.split() == ["spectralmix.layers.fourier_mixing", "FourierMixing", "fnet"]


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_built_ins_resolve_to_their_classes(name):
    from spectralmix import layers

    module, class_name = BUILT_IN[name]
    mixer = get_token_mixer(name)
    assert (mixer.__module__, mixer.__name__) == (module, class_name)
    assert mixer is getattr(layers, class_name)
    assert mixer.token_mixer_name == name
    assert issubclass(mixer, keras.layers.Layer)
    assert token_mixer_names()[:3] == ("fftnet", "fnet", "attention")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # fftnet declares all four; its initializers are omitted here (None).
        ("fftnet", {"num_heads": 4, "max_sequence_length": 9}),
        ("attention", {"num_heads": 4}),  # no length
        ("fnet", {}),  # no shared argument at all
    ],
)
def test_mixer_arguments_passes_only_the_declared_model_arguments(name, expected):
    shared = {"num_heads": 4, "max_sequence_length": 9, "kernel_initializer": None}
    assert mixer_arguments(name, **shared) == expected
    declared = getattr(get_token_mixer(name), "model_arguments", ())  # optional: default ()
    assert set(expected) <= set(declared) <= set(MODEL_ARGUMENTS)


def test_token_mixer_kwargs_win_over_the_model_arguments():
    kwargs = {"num_heads": 2, "variant": "v2"}
    arguments = mixer_arguments("fftnet", kwargs, num_heads=8, max_sequence_length=16)
    assert arguments == {"num_heads": 2, "max_sequence_length": 16, "variant": "v2"}
    assert kwargs == {"num_heads": 2, "variant": "v2"}  # the caller's dict is not changed
    # A mixer's own argument is passed even where it is a model argument it does not declare.
    assert mixer_arguments("fnet", {"fft_impl": "dft"}, num_heads=8) == {"fft_impl": "dft"}
    assert mixer_arguments("attention", None, num_heads=None) == {}  # None: not given


def test_mixer_arguments_reject_unknown_model_arguments_and_mixers():
    with pytest.raises(TypeError, match=r"Unknown model arguments \['heads'\]"):
        mixer_arguments("fftnet", None, heads=4)
    with pytest.raises(ValueError, match="Received: token_mixer='lstm'"):
        mixer_arguments("lstm", None, num_heads=4)


class _Declares(keras.layers.Layer):
    """A toy mixer that takes the heads and one argument of its own."""

    model_arguments = ("num_heads",)

    def __init__(self, num_heads, gain=1.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.gain = num_heads, gain

    def call(self, inputs, mask=None, training=None):
        return inputs * self.gain


def test_a_registered_mixer_gets_what_it_declares():
    register_token_mixer("toy_registry_declares")(_Declares)
    try:
        shared = {"num_heads": 3, "max_sequence_length": 7, "bias_initializer": "zeros"}
        assert mixer_arguments("toy_registry_declares", {"gain": 2.0}, **shared) == {
            "num_heads": 3,
            "gain": 2.0,
        }
        # Registered for Keras under its own module's name, never a spectralmix one.
        assert keras.saving.get_registered_name(_Declares) == f"{__name__}>_Declares"
        assert registry.takes_argument(_Declares, "gain")
        assert not registry.takes_argument(_Declares, "kwargs")  # **kwargs names nothing
        assert not registry.takes_argument(_Declares, "fft_impl")
    finally:
        unregister_token_mixer("toy_registry_declares")


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_built_in_names_cannot_be_registered_again_or_unregistered(name):
    with pytest.raises(ValueError, match=f"'{name}' is a built-in token mixer's name"):
        register_token_mixer(name)(_Declares)
    with pytest.raises(ValueError, match=f"'{name}' is a built-in token mixer and stays"):
        unregister_token_mixer(name)
    # Not even with its own class.
    with pytest.raises(ValueError, match=f"'{name}' is a built-in token mixer's name"):
        register_token_mixer(name)(get_token_mixer(name))
    assert get_token_mixer(name).__name__ == BUILT_IN[name][1]
    assert token_mixer_names().count(name) == 1


@pytest.mark.parametrize("name", ["my-mixer", "", "2d", None, 3])
def test_a_name_must_be_an_identifier(name):
    with pytest.raises(ValueError, match=f"Received: name={name!r}"):
        register_token_mixer(name)


def test_unknown_names_list_the_registered_ones():
    with pytest.raises(ValueError, match="must be a registered token mixer") as error:
        get_token_mixer("lstm")
    message = str(error.value)
    assert "Received: token_mixer='lstm'" in message
    assert all(repr(name) in message for name in token_mixer_names())
    with pytest.raises(ValueError, match="Received: token_mixer='lstm'"):
        unregister_token_mixer("lstm")
    with pytest.raises(ValueError, match="Received: token_mixer=None"):
        get_token_mixer(None)


@pytest.mark.parametrize("value", ["v2", ["variant", "v2"], ("num_heads", 2), {1: "v2"}, 3])
def test_bad_token_mixer_kwargs_are_named(value):
    with pytest.raises(TypeError, match=re.escape(f"Received: token_mixer_kwargs={value!r}")):
        token_mixer_kwargs_dict(value)
    with pytest.raises(TypeError, match="token_mixer_kwargs"):
        mixer_arguments("fftnet", value, num_heads=2)


def test_token_mixer_kwargs_become_a_new_dict():
    from types import MappingProxyType

    kwargs = {"variant": "v2"}
    assert token_mixer_kwargs_dict(None) == {}
    assert token_mixer_kwargs_dict(kwargs) == kwargs
    assert token_mixer_kwargs_dict(kwargs) is not kwargs
    assert token_mixer_kwargs_dict(MappingProxyType(kwargs)) == kwargs
