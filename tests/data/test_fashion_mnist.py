import gzip
import os
import re
import struct

import numpy as np
import pytest

from spectralmix.data import fashion_mnist


def _idx(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    """Idx bytes written independently of the reader: zero, zero, type, ndim, dims, payload."""
    array = np.asarray(array, dtype=np.uint8)
    return (
        bytes([0, 0, dtype_code, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.tobytes()
    )


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _write_split(directory, split, images, labels, *, compress=True):
    prefix = {"train": "train", "test": "t10k"}[split]
    files = {f"{prefix}-images-idx3-ubyte": images, f"{prefix}-labels-idx1-ubyte": labels}
    for name, array in files.items():
        data = _idx(array)
        if compress:
            (directory / f"{name}.gz").write_bytes(_gz(data))
        else:
            (directory / name).write_bytes(data)


def _small_data(directory, *, compress=True, n_train=7, n_test=3):
    """Writes all four files (random pixels, labels cycling 0-9) and returns the arrays."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) * 3 % 10).astype(np.uint8)
        _write_split(directory, split, images, labels, compress=compress)
        arrays[split] = images, labels
    return arrays


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)


@pytest.mark.parametrize("compress", [True, False])
def test_small_files_round_trip(tmp_path, compress):
    arrays = _small_data(tmp_path, compress=compress)
    for split in fashion_mnist.SPLITS:
        images, labels = fashion_mnist.load(split, tmp_path)
        assert images.dtype == np.uint8
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(images, arrays[split][0])
        np.testing.assert_array_equal(labels, arrays[split][1])
    images, labels = fashion_mnist.load("train", tmp_path, limit=2)
    np.testing.assert_array_equal(images, arrays["train"][0][:2])
    np.testing.assert_array_equal(labels, [0, 3])
    # More than there are is all of them.
    assert len(fashion_mnist.load("test", tmp_path, limit=100)[1]) == 3


def test_read_idx_reads_any_unsigned_byte_shape(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(_idx(array))
    np.testing.assert_array_equal(fashion_mnist.read_idx(tmp_path / "a.idx"), array)
    (tmp_path / "a.idx.gz").write_bytes(_gz(_idx(array)))
    np.testing.assert_array_equal(fashion_mnist.read_idx(tmp_path / "a.idx.gz"), array)


IMAGES = np.zeros((2, 28, 28), np.uint8)
GOOD = _idx(IMAGES)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.gz", b"\x01\x02" + GOOD[2:], "is not an idx file: it must start with two zero bytes"),
        ("a.gz", _idx(IMAGES, dtype_code=0x0D), "data type 0x0d; only 0x08"),
        ("a.gz", GOOD[:-1], "is truncated: dimensions (2, 28, 28) need 1568 payload bytes"),
        ("a.gz", GOOD + b"\0", "is longer than its header says"),
        ("a.gz", GOOD[:10], "truncated or empty idx header"),
        ("a.gz", GOOD[:3], "is not an idx file"),
    ],
)
def test_bad_idx_contents_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(_gz(content))
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        fashion_mnist.read_idx(path)
    assert repr(str(path)) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.gz", GOOD, "is not a readable gzip file"),  # plain idx named .gz
        ("a.gz", _gz(GOOD)[:-12], "is not a readable gzip file"),  # truncated gzip
        ("a", _gz(GOOD), "is gzip-compressed but its name does not end in '.gz'"),
    ],
)
def test_bad_compression_names_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        fashion_mnist.read_idx(path)
    assert repr(str(path)) in str(info.value)
    assert "\n" not in str(info.value)


def test_load_checks_counts_dims_and_labels(tmp_path):
    _small_data(tmp_path)
    # 5 labels for 7 images.
    _write_split(tmp_path, "train", np.zeros((7, 28, 28)), np.zeros(5))
    with pytest.raises(ValueError, match="holds 7 images but .* holds 5 labels") as info:
        fashion_mnist.load("train", tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    _write_split(tmp_path, "train", np.zeros((7, 28, 28)), np.full(7, 10))
    with pytest.raises(ValueError, match=r"labels outside 0-9. Received: label 10 at index 0"):
        fashion_mnist.load("train", tmp_path)
    _write_split(tmp_path, "train", np.zeros((7, 32, 32)), np.zeros(7))
    with pytest.raises(ValueError, match=r"images of \(32, 32\) pixels"):
        fashion_mnist.load("train", tmp_path)
    # Labels where the images belong: the magic number says 1 dimension, not 3.
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(_gz(_idx(np.zeros(7))))
    with pytest.raises(ValueError, match="expected magic 0x00000803"):
        fashion_mnist.load("train", tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "val"}, "`split` must be one of ['train', 'test']. Received: split='val'"),
        ({"split": "train", "limit": 0}, "Received: limit=0"),
        ({"split": "train", "limit": True}, "Received: limit=True"),
        ({"split": "train", "limit": 2.0}, "Received: limit=2.0"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    _small_data(tmp_path)
    with pytest.raises(ValueError, match=re.escape(message)):
        fashion_mnist.load(directory=tmp_path, **kwargs)


def test_locate_prefers_argument_then_env_var_then_default(tmp_path, monkeypatch):
    argument, env, default = (tmp_path / name for name in ("argument", "env", "default"))
    for directory in (argument, env, default):
        directory.mkdir()
        _small_data(directory)
    monkeypatch.setattr(fashion_mnist, "DEFAULT_DIR", str(default))
    assert fashion_mnist.locate() == str(default)
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(env))
    assert fashion_mnist.locate() == str(env)
    assert fashion_mnist.locate(argument) == str(argument)
    # An empty variable counts as unset.
    monkeypatch.setenv(fashion_mnist.ENV_VAR, "")
    assert fashion_mnist.locate() == str(default)


def test_an_explicit_place_without_the_files_does_not_fall_back(tmp_path, monkeypatch):
    _small_data(tmp_path)
    monkeypatch.setattr(fashion_mnist, "DEFAULT_DIR", str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(empty))
    with pytest.raises(ValueError, match=f"{fashion_mnist.ENV_VAR}='.*empty' lacks"):
        fashion_mnist.locate()
    with pytest.raises(ValueError, match="directory='.*empty' lacks"):
        fashion_mnist.locate(empty)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match=r"lacks t10k-labels-idx1-ubyte\[.gz\]\."):
        fashion_mnist.locate(tmp_path)


def test_missing_data_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEFAULT_DIR", str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="Fashion-MNIST not found") as info:
        fashion_mnist.load("test")
    message = str(info.value)
    assert "`apt-get install dataset-fashion-mnist`" in message
    assert str(tmp_path / "absent") in message
    assert fashion_mnist.ENV_VAR in message
    assert "\n" not in message


#: Read before `_no_env` clears the variable for the other tests.
INSTALLED_DIR = os.environ.get(fashion_mnist.ENV_VAR) or fashion_mnist.DEFAULT_DIR


@pytest.fixture
def installed_dir():
    directory = INSTALLED_DIR
    try:
        return fashion_mnist.locate(directory)
    except ValueError:
        pytest.skip(
            f"Fashion-MNIST is not installed in {directory}: `sudo apt-get install "
            f"dataset-fashion-mnist` (or set {fashion_mnist.ENV_VAR} to a directory of its files)"
        )


def test_the_installed_data(installed_dir):
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = fashion_mnist.load(split, installed_dir)
        assert images.shape == (n, 28, 28)
        assert labels.shape == (n,)
        assert images.dtype == np.uint8
        assert labels.dtype == np.int32
        # The data set is balanced: 6,000 and 1,000 of every class.
        np.testing.assert_array_equal(np.bincount(labels, minlength=10), [n // 10] * 10)
        assert images.min() == 0
        assert images.max() == 255
        first, first_labels = fashion_mnist.load(split, installed_dir, limit=5)
        np.testing.assert_array_equal(first, images[:5])
        np.testing.assert_array_equal(first_labels, labels[:5])
    # The published test split starts with an ankle boot, a pullover and two trousers.
    assert [fashion_mnist.CLASSES[i] for i in labels[:4]] == [
        "Ankle boot",
        "Pullover",
        "Trouser",
        "Trouser",
    ]
