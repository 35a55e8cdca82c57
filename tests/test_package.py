"""Import hygiene: `import spectralmix` is free, and using it imports no framework that
Keras itself did not."""

import os
import subprocess
import sys

import keras

FRAMEWORKS = ("jax", "tensorflow", "torch")

PROBE = """
import sys
import spectralmix
assert "keras" not in sys.modules, "import spectralmix imported keras"
import spectralmix.reference
import keras
before = {m for m in {FRAMEWORKS} if m in sys.modules}
import numpy as np
from spectralmix.layers import FFTNetBlock, FourierMixing
FFTNetBlock(num_heads=2)(np.ones((1, 8, 4), "float32"))
FourierMixing()(np.ones((1, 8, 4), "float32"))
after = {m for m in {FRAMEWORKS} if m in sys.modules}
print(sorted(before), sorted(after))
assert after == before, f"spectralmix imported {sorted(after - before)}"
""".replace("{FRAMEWORKS}", repr(FRAMEWORKS))


def test_using_spectralmix_imports_no_other_framework():
    env = {**os.environ, "KERAS_BACKEND": keras.config.backend()}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_unknown_attribute_raises():
    import pytest

    import spectralmix

    with pytest.raises(AttributeError, match="no_such_thing"):
        spectralmix.no_such_thing  # noqa: B018


def test_count_flops_at_top_level():
    import spectralmix
    import spectralmix.flops

    assert spectralmix.count_flops is spectralmix.flops.count_flops
