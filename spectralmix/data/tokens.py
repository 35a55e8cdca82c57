"""Token ids for raw signals, grey levels and bytes, shifted up by one so that id 0 stays the
padding id (the classifiers mask it), as LRA's byte-level and pixel-level tasks do.

Examples:
    >>> import numpy as np
    >>> pixel_tokens(np.array([[[0, 255], [7, 1]]], np.uint8)).tolist()
    [[1, 256, 8, 2]]
    >>> byte_tokens(b"Hi").tolist()
    [73, 106]
"""

from __future__ import annotations

import numpy as np

#: 256 grey levels or byte values, and the padding id 0.
VOCABULARY_SIZE = 257


def pixel_tokens(images: np.ndarray) -> np.ndarray:
    """`(n, height, width)` uint8 images as `(n, height * width)` int32 ids, row by row."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            "images must be a uint8 array of shape (n, height, width). "
            f"Received: dtype={images.dtype}, shape={images.shape}"
        )
    return images.reshape(len(images), -1).astype(np.int32) + 1


def byte_tokens(data: bytes) -> np.ndarray:
    """The bytes of `data` as int32 ids 1-256."""
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"data must be bytes. Received: {type(data).__name__}")
    return np.frombuffer(bytes(data), np.uint8).astype(np.int32) + 1
