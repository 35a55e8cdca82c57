import os

import keras
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


#: The LRA ListOps files shared with this repository (README there); tests that need them skip
#: with this path in the reason where they are absent.
LISTOPS_DIR = os.environ.get(
    "SPECTRALMIX_LISTOPS_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "listops"),
)


@pytest.fixture
def listops_dir():
    if not os.path.isfile(os.path.join(LISTOPS_DIR, "basic_test.tsv.gz")):
        pytest.skip(f"LRA ListOps files not found at {os.path.abspath(LISTOPS_DIR)}")
    return LISTOPS_DIR


@pytest.fixture(scope="session")
def tiny_listops_dir(tmp_path_factory):
    """A small generated ListOps dataset (short expressions) for fast end-to-end runs."""
    from spectralmix.data import listops_generator

    out = tmp_path_factory.mktemp("listops")
    listops_generator.write_splits(
        out, {"train": 160, "val": 48, "test": 48}, seed=7, min_length=10, max_length=60
    )
    return str(out)
