"""Fashion-MNIST from the files the Debian package `dataset-fashion-mnist` installs (offline).

Zalando's Fashion-MNIST: 70,000 grayscale 28x28 images of 10 clothing classes, 60,000 for
training and 10,000 for testing, 6,000 and 1,000 per class. The package ships the four
original idx files gzipped in `DEFAULT_DIR`:

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

(uncompressed files with the same names less `.gz` are read too). Nothing is downloaded: the
files are looked for in the `directory` argument, then in the directory named by the
environment variable `SPECTRALMIX_FASHION_MNIST_DIR`, then in `DEFAULT_DIR`; where they are
missing, the error says how to install them (`apt-get install dataset-fashion-mnist`).

The idx reader checks everything it can: the magic number (unsigned-byte data, the expected
number of dimensions), a payload exactly as long as the dimensions say (a truncated file is an
error, never silently cut short), equal image and label counts and labels 0-9.

Examples:
    >>> CLASSES[0], CLASSES[9]
    ('T-shirt/top', 'Ankle boot')
    >>> parse_idx(b"\\x00\\x00\\x08\\x01" b"\\x00\\x00\\x00\\x03" b"\\x07\\x00\\x09")
    array([7, 0, 9], dtype=uint8)
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from spectralmix.validation import choice, one_line, optional_positive_int

#: The environment variable naming a directory with the four idx files.
ENV_VAR = "SPECTRALMIX_FASHION_MNIST_DIR"
#: Where the Debian/Ubuntu package `dataset-fashion-mnist` installs them.
DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
INSTALL_COMMAND = "apt-get install dataset-fashion-mnist"
#: The class names, indexed by label (the Fashion-MNIST README's table).
CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASSES)
IMAGE_SHAPE = (28, 28)
SPLITS = ("train", "test")
#: The file-name prefix of each split (the test files are the original `t10k-*`).
_PREFIXES = {"train": "train", "test": "t10k"}
#: Magic numbers: two zero bytes, the data type (0x08: unsigned byte), the number of dims.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_UNSIGNED_BYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def _file_names(split: str) -> tuple[str, str]:
    prefix = _PREFIXES[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


_ALL_FILES = tuple(name for split in SPLITS for name in _file_names(split))


def _find(directory: str, name: str) -> str | None:
    """`directory/name.gz` or `directory/name`, whichever exists (the `.gz` first)."""
    for candidate in (f"{name}.gz", name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _missing(directory: str) -> list[str]:
    return [f"{name}[.gz]" for name in _ALL_FILES if _find(directory, name) is None]


def locate(directory: str | os.PathLike | None = None) -> str:
    """The directory holding the four Fashion-MNIST idx files.

    Looks in `directory` when given, else in `$SPECTRALMIX_FASHION_MNIST_DIR` when that is set
    (and not empty), else in `DEFAULT_DIR`. A place that was asked for explicitly (argument or
    environment variable) but lacks a file is an error: there is no fall-back past it.
    """
    if directory is not None:
        place, source = os.fspath(directory), f"directory={os.fspath(directory)!r}"
    elif os.environ.get(ENV_VAR):
        place, source = os.environ[ENV_VAR], f"{ENV_VAR}={os.environ[ENV_VAR]!r}"
    else:
        place, source = DEFAULT_DIR, f"the default directory {DEFAULT_DIR!r}"
    if not os.path.isdir(place):
        raise ValueError(
            f"Fashion-MNIST not found: {source} is not a directory. Install the data with "
            f"`{INSTALL_COMMAND}` (it puts the idx files in {DEFAULT_DIR}), or pass directory= "
            f"or set {ENV_VAR} to a directory holding {', '.join(_ALL_FILES)} (each .gz or not)"
        )
    missing = _missing(place)
    if missing:
        raise ValueError(
            f"Fashion-MNIST not found: {source} lacks {', '.join(missing)}. Install the data "
            f"with `{INSTALL_COMMAND}` (it puts the idx files in {DEFAULT_DIR}), or pass "
            f"directory= or set {ENV_VAR} to a directory holding all four files"
        )
    return place


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """The unsigned-byte array of an idx file's bytes; errors name the file as `name`.

    The header is two zero bytes, the data type (only 0x08, unsigned byte, is read), the number
    of dimensions and one big-endian uint32 per dimension; the payload must be exactly the
    product of the dimensions long.
    """
    if len(data) < 4 or data[:2] != b"\0\0":
        raise ValueError(
            f"{name!r} is not an idx file: it must start with two zero bytes. "
            f"Received: first bytes {data[:4]!r}"
        )
    magic = int.from_bytes(data[:4], "big")
    if data[2] != _UNSIGNED_BYTE:
        raise ValueError(
            f"{name!r} holds idx data type 0x{data[2]:02x}; only 0x08 (unsigned byte) is read. "
            f"Received: magic=0x{magic:08x}"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise ValueError(
            f"{name!r} has a truncated or empty idx header ({len(data)} bytes for {ndim} "
            f"dimensions). Received: magic=0x{magic:08x}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64))
    received = len(data) - header
    if received != expected:
        what = "truncated" if received < expected else "longer than its header says"
        raise ValueError(
            f"{name!r} is {what}: dimensions {shape} need {expected} payload bytes. "
            f"Received: {received} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an idx file (gzipped when its name ends in `.gz`, plain otherwise); see
    `parse_idx`. A `.gz` that is not gzip, a truncated gzip stream and a gzip file without the
    `.gz` name raise a one-line `ValueError` naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No idx file at path={path!r}")
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
            if data.startswith(_GZIP_MAGIC):
                raise ValueError(
                    f"{path!r} is gzip-compressed but its name does not end in '.gz': "
                    "rename it to end in .gz (or gunzip it)"
                )
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(
            f"{path!r} is not a readable gzip file ({one_line(error)}): a name ending in "
            "'.gz' must hold gzip data (a plain idx file must not end in .gz)"
        ) from None
    except OSError as error:
        raise ValueError(f"{path!r} cannot be read: {one_line(error)}") from None
    return parse_idx(data, path)


def _check_magic(array: np.ndarray, path: str, magic: int) -> None:
    if array.ndim != magic & 0xFF:
        raise ValueError(
            f"{path!r} has {array.ndim} dimensions; expected magic 0x{magic:08x} "
            f"({magic & 0xFF} dimensions). Received: shape={array.shape}"
        )


def load(
    split: str, directory: str | os.PathLike | None = None, *, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One split as `(images, labels)`: uint8 `(n, 28, 28)` (0-255, 0 the background)
    and int32 `(n,)` in 0-9 (`CLASSES[label]` names it).

    Args:
        split: "train" (60,000 examples) or "test" (10,000).
        directory: where the idx files are; see `locate` for the default.
        limit: keep only the first `limit` examples (for smoke runs). The files are still read
            and checked whole.
    """
    choice("split", split, SPLITS)
    optional_positive_int("limit", limit)
    place = locate(directory)
    images_path, labels_path = (_find(place, name) for name in _file_names(split))
    images, labels = read_idx(images_path), read_idx(labels_path)
    _check_magic(images, images_path, IMAGES_MAGIC)
    _check_magic(labels, labels_path, LABELS_MAGIC)
    if images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            f"{images_path!r} holds images of {images.shape[1:]} pixels; Fashion-MNIST's are "
            f"{IMAGE_SHAPE}. Received: shape={images.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path!r} holds {len(images)} images but {labels_path!r} holds "
            f"{len(labels)} labels: the counts must match"
        )
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise ValueError(
            f"{labels_path!r} has {bad.size} labels outside 0-{NUM_CLASSES - 1}. Received: "
            f"label {int(labels[bad[0]])} at index {int(bad[0])}"
        )
    if limit is not None:
        images, labels = images[:limit].copy(), labels[:limit]
    return images, labels.astype(np.int32)
