"""The task registry: registering, finding and making tasks by name, and rejecting bad ones."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import pytest

from spectralmix.tasks import registry
from spectralmix.tasks.registry import (
    data_names,
    get_task,
    make_task,
    register_task,
    task_names,
    unregister_task,
)

BUILT_IN = (
    "listops",
    "pathfinder",
    "pathx",
    "pathfinder_easy",
    "image",
    "text",
    "fashion_vit",
    "lm",
)
TOY = "toy_registry_task"


@pytest.fixture
def toy():
    """A toy task factory registered as `TOY` for one test, always unregistered after; it
    returns its arguments instead of a `harness.Task`."""

    def make_toy(data=None, *, seed=0, test_examples=None):
        return {"data": data, "seed": seed, "test_examples": test_examples}

    assert TOY not in task_names()
    register_task(TOY, data="toy_data", test_examples=5)(make_toy)
    try:
        yield make_toy
    finally:
        if TOY in task_names():
            unregister_task(TOY)


def test_built_ins_are_registered():
    # Listing the tasks imports the built-in task modules; each registers as it is imported,
    # so their order is the order the modules were first imported in.
    assert set(task_names()[: len(BUILT_IN)]) == set(BUILT_IN)
    for name in BUILT_IN:
        entry = get_task(name)
        assert entry.name == name
        assert (
            entry.module == f"spectralmix.tasks.{'pathfinder' if name.startswith('path') else name}"
        )


def test_a_registered_task_is_found_and_made(toy):
    assert task_names()[-1] == TOY
    entry = get_task(TOY)
    assert (entry.name, entry.make, entry.data, entry.test_examples) == (TOY, toy, "toy_data", 5)
    assert entry.module == __name__
    # The registered test cap is the default; the caller's wins.
    assert make_task(TOY) == {"data": None, "seed": 0, "test_examples": 5}
    assert make_task(TOY, data="/d", seed=3, test_examples=2) == {
        "data": "/d",
        "seed": 3,
        "test_examples": 2,
    }
    assert data_names()[-1] == "toy_data"
    unregister_task(TOY)
    assert TOY not in task_names()
    assert "toy_data" not in data_names()
    with pytest.raises(ValueError, match=f"Received: task='{TOY}'"):
        get_task(TOY)


def test_registering_the_same_function_again_is_no_error(toy):
    assert register_task(TOY, data="toy_data", test_examples=5)(toy) is toy
    assert task_names().count(TOY) == 1


def test_a_name_taken_by_another_function_is_rejected(toy):
    def make_other(data=None, *, seed=0, test_examples=None):
        raise AssertionError("never made")

    with pytest.raises(ValueError, match=f"'{TOY}' is already registered by {__name__}"):
        register_task(TOY)(make_other)
    assert get_task(TOY).make is toy
    with pytest.raises(ValueError, match="'listops' is already registered by spectralmix"):
        register_task("listops")(make_other)
    assert get_task("listops").module == "spectralmix.tasks.listops"


def test_a_built_in_name_is_not_taken_by_a_function_of_the_same_name():
    # Every built-in factory is called `make`; another module's `make` is another function.
    original = get_task("listops")

    def make(data=None, *, seed=0, test_examples=None):
        raise AssertionError("never made")

    make.__qualname__ = "make"  # as a module-level `make` of a plugin module is
    try:
        with pytest.raises(ValueError, match="'listops' is already registered"):
            register_task("listops")(make)
    finally:
        registry._TASKS["listops"] = original  # whatever happened, the built-in stays
    assert get_task("listops") is original


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "my-task"}, "name='my-task'"),
        ({"name": ""}, "name=''"),
        ({"name": 3}, "name=3"),
        ({"name": "t", "data": "fashion-mnist"}, "data='fashion-mnist'"),
        ({"name": "t", "data": 5}, "data=5"),
        ({"name": "t", "test_examples": 0}, "Received: 0"),
        ({"name": "t", "test_examples": -3}, "Received: -3"),
        ({"name": "t", "test_examples": 2.0}, "Received: 2.0"),
        ({"name": "t", "test_examples": True}, "Received: True"),
    ],
)
def test_bad_registrations_name_the_value(arguments, message):
    name = arguments.pop("name")
    with pytest.raises(ValueError, match=message):
        register_task(name, **arguments)
    assert name not in task_names()


def test_a_factory_must_be_callable():
    with pytest.raises(TypeError, match="'not_callable'.*3"):
        register_task("not_callable")(3)
    assert "not_callable" not in task_names()


def test_data_names_list_each_data_set_once(toy):
    names = data_names()
    assert set(names[:4]) == {"listops", "pathfinder", "fashion_mnist", "spam_assassin"}
    assert len(names) == len(set(names))
    # Several tasks read one data set: pathfinder and pathx, image and fashion_vit.
    assert get_task("pathx").data == get_task("pathfinder").data == "pathfinder"
    assert get_task("fashion_vit").data == get_task("image").data == "fashion_mnist"

    def make_more(data=None, *, seed=0, test_examples=None):
        raise AssertionError("never made")

    register_task("toy_registry_more", data="toy_data")(make_more)
    try:
        assert data_names() == names  # toy_data is listed once, already
    finally:
        unregister_task("toy_registry_more")


def test_a_task_without_data_adds_no_data_name():
    def make_none(data=None, *, seed=0, test_examples=None):
        raise AssertionError("never made")

    before = data_names()
    register_task("toy_registry_no_data")(make_none)
    try:
        assert get_task("toy_registry_no_data").data is None
        assert data_names() == before
    finally:
        unregister_task("toy_registry_no_data")


@pytest.mark.parametrize("name", ["cifar", None, 3])
def test_an_unknown_task_lists_the_registered_ones(name, toy):
    with pytest.raises(ValueError, match="must be a registered task") as error:
        get_task(name)
    message = str(error.value)
    assert f"Received: task={name!r}" in message
    for registered in task_names():
        assert repr(registered) in message
    with pytest.raises(ValueError, match=f"Received: task={name!r}"):
        make_task(name)
    with pytest.raises(ValueError, match=f"Received: task={name!r}"):
        unregister_task(name)


def test_listing_the_tasks_imports_no_keras():
    code = (
        "import sys\n"
        "from spectralmix.tasks.registry import data_names, get_task, task_names\n"
        "assert 'listops' in task_names() and 'fashion_mnist' in data_names()\n"
        "get_task('image')\n"
        "loaded = sorted(m for m in sys.modules\n"
        "                if m.split('.')[0] in ('keras', 'jax', 'tensorflow', 'torch'))\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "KERAS_BACKEND": keras.config.backend()}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
