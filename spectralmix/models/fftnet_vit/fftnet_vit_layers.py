"""Image-side layers of FFTNetViT: patch embedding and a resizable patch position embedding."""

from __future__ import annotations

import keras
from keras import ops

from spectralmix.layers import _checks


@keras.saving.register_keras_serializable(package="spectralmix")
class PatchEmbedding(keras.layers.Layer):
    """Splits images into non-overlapping `patch_size` squares and embeds each linearly.

    A `Conv2D(hidden_dim, patch_size, strides=patch_size)`: `(B, H, W, C) -> (B, H/p, W/p, D)`.
    An image side not divisible by `patch_size` raises a `ValueError` (never cropped).

    Args:
        hidden_dim: embedding width `D`.
        patch_size: patch side `p` in pixels.
        **kwargs: base `keras.layers.Layer` arguments.

    Examples:
        >>> import numpy as np
        >>> tuple(PatchEmbedding(8, 4)(np.zeros((1, 16, 12, 3), "float32")).shape)
        (1, 4, 3, 8)
    """

    def __init__(self, hidden_dim, patch_size, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = _checks.positive_int("hidden_dim", hidden_dim)
        self.patch_size = _checks.positive_int("patch_size", patch_size)

    def _check(self, shape):
        if len(shape) != 4:
            raise ValueError(
                "PatchEmbedding expects images (batch, height, width, channels). "
                f"Received: input_shape={tuple(shape)}"
            )
        for side in shape[1:3]:
            if side is not None and side % self.patch_size:
                raise ValueError(
                    f"Image size must be divisible by patch_size={self.patch_size}. "
                    f"Received: input_shape={tuple(shape)}"
                )

    def build(self, input_shape):
        self._check(input_shape)
        self.projection = keras.layers.Conv2D(
            self.hidden_dim,
            self.patch_size,
            strides=self.patch_size,
            padding="valid",
            dtype=self.dtype_policy,
            name="projection",
        )
        self.projection.build(input_shape)

    def call(self, inputs):
        self._check(inputs.shape)
        return self.projection(inputs)

    def compute_output_shape(self, input_shape):
        def grid(side):
            return None if side is None else side // self.patch_size

        return (input_shape[0], grid(input_shape[1]), grid(input_shape[2]), self.hidden_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "patch_size": self.patch_size,
        }


@keras.saving.register_keras_serializable(package="spectralmix")
class PatchPositionEmbedding(keras.layers.Layer):
    """Adds a learned position vector per patch of a `grid_size × grid_size` grid.

    At another grid (another image size) the table is resized bilinearly (half-pixel centres,
    as `keras.ops.image.resize`), as for ViT fine-tuning at a new resolution; at the built grid
    it is used as it is.

    Args:
        grid_size: patches per image side at the built image size.
        **kwargs: base `keras.layers.Layer` arguments.

    Examples:
        >>> import numpy as np
        >>> layer = PatchPositionEmbedding(4)
        >>> tuple(layer(np.zeros((1, 6, 6, 8), "float32")).shape)  # a larger image
        (1, 6, 6, 8)
    """

    def __init__(self, grid_size, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = _checks.positive_int("grid_size", grid_size)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "PatchPositionEmbedding expects (batch, rows, cols, channels) with known "
                f"channels. Received: input_shape={tuple(input_shape)}"
            )
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.grid_size, self.grid_size, input_shape[-1]),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )

    def call(self, inputs):
        rows, cols = inputs.shape[1], inputs.shape[2]
        if rows is None or cols is None:
            raise ValueError(
                "PatchPositionEmbedding needs the image size when it runs. "
                f"Received: input_shape={tuple(inputs.shape)}"
            )
        table = ops.convert_to_tensor(self.position_embeddings)
        if (rows, cols) != (self.grid_size, self.grid_size):
            table = ops.image.resize(
                table[None], (rows, cols), interpolation="bilinear", antialias=False
            )[0]
        return inputs + ops.cast(table, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "grid_size": self.grid_size}
