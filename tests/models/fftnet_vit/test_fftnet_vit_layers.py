import numpy as np
import pytest

from spectralmix.models.fftnet_vit import PatchEmbedding, PatchPositionEmbedding
from tests.helpers import assert_close, to_numpy


def test_patch_embedding_is_a_linear_map_of_each_patch(rng):
    layer = PatchEmbedding(5, 2)
    images = rng.standard_normal((1, 4, 6, 3)).astype("float32")
    y = to_numpy(layer(images))
    kernel = to_numpy(layer.projection.kernel).reshape(2 * 2 * 3, 5)  # (p, p, C, D)
    bias = to_numpy(layer.projection.bias)
    patch = images[0, 2:4, 4:6, :].reshape(-1)  # row 1, column 2 of the 2x3 grid
    assert y.shape == (1, 2, 3, 5)
    assert_close(y[0, 1, 2], patch @ kernel + bias)


def test_patch_embedding_rejects_sizes_it_would_crop():
    with pytest.raises(ValueError, match="patch_size=4"):
        PatchEmbedding(8, 4)(np.zeros((1, 10, 8, 3), "float32"))


def _bilinear_half_pixel(table, out_rows, out_cols):
    """Independent numpy bilinear resize with half-pixel centres (no antialiasing)."""

    def coords(n_out, n_in):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    r0, r1, wr = coords(out_rows, table.shape[0])
    c0, c1, wc = coords(out_cols, table.shape[1])
    top = table[r0][:, c0] * (1 - wc)[None, :, None] + table[r0][:, c1] * wc[None, :, None]
    bottom = table[r1][:, c0] * (1 - wc)[None, :, None] + table[r1][:, c1] * wc[None, :, None]
    return top * (1 - wr)[:, None, None] + bottom * wr[:, None, None]


@pytest.mark.parametrize("grid", [(4, 4), (6, 6), (3, 5)])
def test_position_table_resized_bilinearly(rng, grid):
    layer = PatchPositionEmbedding(4)
    layer.build((None, 4, 4, 2))
    table = rng.standard_normal((4, 4, 2)).astype("float32")
    layer.position_embeddings.assign(table)
    y = to_numpy(layer(np.zeros((1, *grid, 2), "float32")))[0]
    expected = table if grid == (4, 4) else _bilinear_half_pixel(table.astype(np.float64), *grid)
    assert_close(y, expected)
