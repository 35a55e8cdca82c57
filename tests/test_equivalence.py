"""Cross-backend equivalence: a `.keras` file saved under one backend loads under the other two
and gives the same outputs and gradients (the spectral layer, a stack of every block kind, an
FFTNetViT classifier; a masked FFTNet sequence classifier: logits); the spectral layer also
matches the float64 oracle.

Each backend runs in its own process (Keras fixes the backend per process). Needs jax,
tensorflow and torch in one environment: `nox -s equivalence`.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from spectralmix import reference as R
from tests.tolerances import TOLERANCES

pytestmark = pytest.mark.equivalence

BACKENDS = ("jax", "tensorflow", "torch")
MISSING = [b for b in BACKENDS if importlib.util.find_spec(b) is None]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIND = {
    "filter": "float32_op",
    "stack": "float32_model",
    "vit": "float32_model",
    "sequence": "float32_model",
}


def _worker(backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": ROOT}
    result = subprocess.run(
        [sys.executable, "-m", "tests.equivalence_worker", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{backend} {args[0]} failed:\n{result.stderr[-4000:]}"


def _close(actual, expected, kind, what):
    tol = TOLERANCES[kind]
    atol = tol * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=atol, err_msg=what)


@pytest.mark.skipif(bool(MISSING), reason=f"needs all three frameworks; missing {MISSING}")
@pytest.mark.parametrize("source", BACKENDS)
def test_saved_under_one_backend_same_everywhere(source, tmp_path):
    saved, results = tmp_path / "saved", tmp_path / "results"
    saved.mkdir()
    results.mkdir()
    _worker(source, "save", str(saved), str(results))
    for target in BACKENDS:
        if target != source:
            _worker(target, "load", str(saved), str(results))
    for name, kind in KIND.items():
        reference = np.load(results / f"{name}_{source}.npz")
        for target in BACKENDS:
            other = np.load(results / f"{name}_{target}.npz")
            assert set(other.files) == set(reference.files)
            for key in reference.files:
                what = f"{name}: {key} saved on {source}, run on {target}"
                if key.startswith("weight/"):
                    np.testing.assert_array_equal(other[key], reference[key], err_msg=what)
                else:
                    _close(other[key], reference[key], kind, what)
    # And the spectral layer agrees with the float64 oracle, whichever backend saved it.
    data = np.load(results / f"filter_{source}.npz")
    weights = {
        k.split("/")[-1]: data[k].astype(np.float64) for k in data.files if k.startswith("weight/")
    }
    x = np.load(saved / "filter_x.npy").astype(np.float64)
    expected = R.adaptive_spectral_filter(
        x,
        num_heads=2,
        max_sequence_length=16,
        base_filter=weights["base_filter"],
        bias=weights["spectral_bias"],
        context_kernel=data["weight/mixer/context_dense/kernel"].astype(np.float64),
        context_bias=data["weight/mixer/context_dense/bias"].astype(np.float64),
        modulation_kernel=data["weight/mixer/modulation_dense/kernel"].astype(np.float64),
        modulation_bias=data["weight/mixer/modulation_dense/bias"].astype(np.float64),
    )
    _close(data["y"], expected, "float32_op", "filter vs oracle")
