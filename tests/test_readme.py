"""The README's Python examples, run as they are written, on the active backend.

The blocks run in order in one namespace, as a reader would paste them into one session. The
only change is the backend line (`os.environ["KERAS_BACKEND"] = "jax"`), which names the
active backend instead: the suite runs once per backend, each with only that framework.
"""

from __future__ import annotations

import linecache
import re
from pathlib import Path

import keras
import pytest

from tests.helpers import BACKEND

README = Path(__file__).resolve().parents[1] / "README.md"
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
BACKEND_LINE = re.compile(r'^os\.environ\["KERAS_BACKEND"\] = "jax"', re.M)


def readme_blocks() -> list[str]:
    return CODE_BLOCK.findall(README.read_text(encoding="utf-8"))


def test_the_first_block_sets_the_backend_before_keras_is_imported():
    first = readme_blocks()[0]
    assert len(BACKEND_LINE.findall(first)) == 1
    lines = first.splitlines()
    backend_line = next(i for i, line in enumerate(lines) if BACKEND_LINE.match(line))
    keras_import = lines.index("import keras")
    assert backend_line < keras_import
    assert "set_backend" not in first  # it cannot switch a backend Keras already started


def test_install_lines_name_a_working_command():
    text = README.read_text(encoding="utf-8")
    assert "pip install spectralmix[" not in text  # not on PyPI
    assert 'pip install -e ".[jax]"' in text


def test_every_python_block_runs(monkeypatch):
    # The examples build models: several seconds under contention on a shared CPU at most
    # (the README uses the tiny ViT preset; ViT-B/16 took 2-3 times as long).
    monkeypatch.setenv("KERAS_BACKEND", BACKEND)
    blocks = readme_blocks()
    assert len(blocks) >= 2
    namespace = {"__name__": "readme"}
    for number, block in enumerate(blocks, start=1):
        if number == 1:
            block = BACKEND_LINE.sub(f'os.environ["KERAS_BACKEND"] = "{BACKEND}"', block)
        filename = f"{README}[block {number}]"
        # Registered as a source file so that a traceback shows the README's lines.
        linecache.cache[filename] = (len(block), None, block.splitlines(True), filename)
        exec(compile(block, filename, "exec"), namespace)

    # Block 1: an FFTNetBlock keeps the token sequence's shape; the baseline is attention.
    assert tuple(namespace["y"].shape) == (None, 1024, 256)
    assert namespace["baseline"].token_mixer == "attention"
    # Block 2: the presets build with the overrides the README passes.
    model, vit, clf = namespace["model"], namespace["vit"], namespace["clf"]
    assert isinstance(model, keras.Model)
    assert tuple(model.output.shape) == (None, 1000)
    assert vit.backbone.get_config()["token_mixer"] == "attention"
    assert model.backbone.get_config()["token_mixer"] == "fftnet"
    assert tuple(clf.output.shape) == (None, 10)
    assert "fftnet_vit_tiny_patch16_224" in namespace["list_presets"]()


@pytest.mark.parametrize("name", ["docs/listops.md", "docs/export.md"])
def test_pages_the_readme_points_to_exist(name):
    assert (README.parent / name).is_file()
    assert f"`{name}`" in README.read_text(encoding="utf-8")
