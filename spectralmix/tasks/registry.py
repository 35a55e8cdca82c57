"""The task registry: each task registers its factory; the arena and the CLI look tasks up.

A task module defines a factory `make(data=None, *, seed=0, test_examples=None)` returning a
`spectralmix.tasks.harness.Task` and registers it:

    @register_task("image", data="fashion_mnist", test_examples=2_000)
    def make(data=None, *, seed=0, test_examples=None): ...

`data` names the data set the task reads (several tasks may share one: `--data NAME=PATH` on
the command line, `data={NAME: PATH}` in `spectralmix.tasks.arena.run`); `None` for a task
that needs none. `test_examples` is how many test examples the arena scores by default (the
first of the split; `None`: all). Framework-free: no Keras is imported here.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

#: The built-in task modules, imported on first use (each registers its tasks).
_BUILT_IN_MODULES = ("listops", "pathfinder", "image", "text", "fashion_vit", "lm", "recall")


@dataclasses.dataclass(frozen=True)
class TaskEntry:
    """A registered task: its factory, the data set it reads and the arena's test cap."""

    name: str
    make: Callable[..., Any]
    data: str | None = None
    test_examples: int | None = None

    @property
    def module(self) -> str:
        """The module that defines (and registers) the task."""
        return self.make.__module__


_TASKS: dict[str, TaskEntry] = {}
_loaded = False


def _load_built_ins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILT_IN_MODULES:
            importlib.import_module(f"spectralmix.tasks.{module}")


def register_task(name: str, *, data: str | None = None, test_examples: int | None = None):
    """Decorator: registers `make(data=None, *, seed=0, test_examples=None)` as task `name`."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"A task's name must be a Python identifier. Received: name={name!r}")
    if data is not None and (not isinstance(data, str) or not data.isidentifier()):
        raise ValueError(f"`data` must be an identifier or None. Received: data={data!r}")
    if test_examples is not None and (
        isinstance(test_examples, bool) or not isinstance(test_examples, int) or test_examples < 1
    ):
        raise ValueError(
            f"`test_examples` must be a positive integer or None. Received: {test_examples!r}"
        )

    def register(make):
        if not callable(make):
            raise TypeError(f"A task factory must be callable. Received for {name!r}: {make!r}")
        existing = _TASKS.get(name)
        where = (make.__module__, make.__qualname__)
        if existing is not None and (existing.module, existing.make.__qualname__) != where:
            raise ValueError(f"The task name {name!r} is already registered by {existing.module}")
        _TASKS[name] = TaskEntry(name, make, data, test_examples)
        return make

    return register


def unregister_task(name: str) -> None:
    """Removes task `name` (for tests and interactive sessions)."""
    get_task(name)
    del _TASKS[name]


def task_names() -> tuple[str, ...]:
    """The registered tasks: the built-ins in `_BUILT_IN_MODULES`' order, then the others."""
    _load_built_ins()
    order = {f"spectralmix.tasks.{m}": i for i, m in enumerate(_BUILT_IN_MODULES)}
    return tuple(sorted(_TASKS, key=lambda n: order.get(_TASKS[n].module, len(order))))


def data_names() -> tuple[str, ...]:
    """The data sets the registered tasks read (the NAMEs of `--data NAME=PATH`)."""
    return tuple(dict.fromkeys(e.data for e in map(get_task, task_names()) if e.data))


def get_task(name: Any) -> TaskEntry:
    _load_built_ins()
    if not isinstance(name, str) or name not in _TASKS:
        raise ValueError(
            f"`task` must be a registered task, one of {list(_TASKS)} (register one with "
            f"spectralmix.tasks.registry.register_task). Received: task={name!r}"
        )
    return _TASKS[name]


def make_task(name: str, *, data: Any = None, seed: int = 0, test_examples: int | None = None):
    """The `harness.Task` called `name`, reading its data from `data` (None: found by the
    task's reader, or generated); `test_examples` defaults to the task's registered cap."""
    entry = get_task(name)
    if test_examples is None:
        test_examples = entry.test_examples
    return entry.make(data, seed=seed, test_examples=test_examples)
