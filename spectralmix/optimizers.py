"""Optimizers of spectralmix, serializable under the package name "spectralmix".

`AdamW` is Keras's AdamW with one change on TensorFlow: a sparse gradient (`tf.IndexedSlices`,
what TensorFlow gives an `Embedding`'s table) has its repeated rows summed before the update.

Why: Keras 3's Adam family computes the second moment with `ops.square(gradient)`, and on
TensorFlow `ops.square` of `IndexedSlices` squares each slice on its own. A token id that
occurs `k` times in a batch gives `k` slices, so the table's row gets `Σ gᵢ²` where the dense
gradient, and JAX and PyTorch, give `(Σ gᵢ)²`. Whole-batch training with an `Embedding` on
TensorFlow therefore drifts from the other backends, and gradient accumulation (whose
accumulator is dense) does not reproduce whole-batch updates. A minimal reproduction, and the
size of the effect, are in `docs/arena.md` ("TensorFlow's sparse Adam").
Summing the repeated rows (`tf.unique` + `tf.math.unsorted_segment_sum`) keeps the gradient
sparse, and makes the update the dense one. On JAX and PyTorch gradients are dense and this
is Keras's AdamW unchanged.

`spectralmix.layers` imports this module, so every load path that rebuilds a spectralmix
model can also rebuild its optimizer.
"""

from __future__ import annotations

import sys

import keras

__all__ = ["AdamW", "sum_repeated_rows"]


def sum_repeated_rows(gradient):
    """`gradient` with repeated rows of a `tf.IndexedSlices` summed into one slice each; any
    other value (a dense gradient, `None`) unchanged.

    Examples:
        >>> import numpy as np
        >>> sum_repeated_rows(np.ones(2)).tolist()  # not sparse: unchanged
        [1.0, 1.0]
    """
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(gradient, tf.IndexedSlices):
        return gradient
    rows, position = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, gradient.dense_shape)


@keras.saving.register_keras_serializable(package="spectralmix")
class AdamW(keras.optimizers.AdamW):
    """Keras's `AdamW`, with the repeated rows of sparse (TensorFlow) gradients summed before
    the update, so an `Embedding` is updated as on JAX and PyTorch (see the module docstring).
    Arguments and behaviour are otherwise those of `keras.optimizers.AdamW`.

    Examples:
        >>> import keras
        >>> optimizer = AdamW(learning_rate=1e-3, weight_decay=0.01)
        >>> optimizer.get_config()["weight_decay"]
        0.01
    """

    def apply(self, grads, trainable_variables=None):
        return super().apply([sum_repeated_rows(g) for g in grads], trainable_variables)
