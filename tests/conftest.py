import functools
import gzip
import hashlib
import os

import keras
import numpy as np
import pytest

#: Tests marked `slow` (20 s or more on a 2-core CPU each) run only with this set to 1: CI sets
#: it (`.ci/run`), so everything is tested there, and the README's command stays short.
RUN_SLOW = os.environ.get("SPECTRALMIX_RUN_SLOW") == "1"


def pytest_collection_modifyitems(config, items):
    if RUN_SLOW:
        return
    skip = pytest.mark.skip(reason="slow: set SPECTRALMIX_RUN_SLOW=1 to run it (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
#: where they are absent, saying how to make them. SPECTRALMIX_LISTOPS_DIR points elsewhere.
LISTOPS_DIR = os.environ.get(
    "SPECTRALMIX_LISTOPS_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "listops"),
)
#: sha256 of the shared `basic_test` split, uncompressed: the split that the shipped preset's
#: recorded test accuracy was measured on.
SHARED_TEST_SHA256 = "ddffbda4dcb979578197811d521aecb8746c9430bf8816830afa2b771ca79d8d"


@pytest.fixture
def listops_dir():
    """A directory with `basic_{train,val,test}.tsv.gz`: the shared files, or any made by
    `spectralmix data listops` and named by SPECTRALMIX_LISTOPS_DIR."""
    if not os.path.isfile(os.path.join(LISTOPS_DIR, "basic_test.tsv.gz")):
        pytest.skip(
            f"LRA ListOps files not found at {os.path.abspath(LISTOPS_DIR)}: make them with "
            "`spectralmix data listops --out DIR` and set SPECTRALMIX_LISTOPS_DIR=DIR"
        )
    return LISTOPS_DIR


@functools.cache
def _uncompressed_sha256(path: str) -> str:
    with gzip.open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def shared_listops_dir(listops_dir):
    """`listops_dir` holding the shared test split itself, for results recorded on it."""
    path = os.path.join(listops_dir, "basic_test.tsv.gz")
    if _uncompressed_sha256(path) != SHARED_TEST_SHA256:
        pytest.skip(
            f"{os.path.abspath(path)} is not the shared LRA test split (sha256 "
            f"{SHARED_TEST_SHA256[:12]}... uncompressed) that the preset's recorded accuracy is "
            "for; other files, e.g. generated ones, score differently (docs/listops.md)"
        )
    return listops_dir


@pytest.fixture(scope="session")
def tiny_listops_dir(tmp_path_factory):
    """A small generated ListOps dataset (short expressions) for fast end-to-end runs."""
    from spectralmix.data import listops_generator

    out = tmp_path_factory.mktemp("listops")
    listops_generator.write_splits(
        out, {"train": 160, "val": 48, "test": 48}, seed=7, min_length=10, max_length=60
    )
    return str(out)
