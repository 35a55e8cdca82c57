"""spectralmix.optimizers.AdamW: one update of an Embedding-Dense model against AdamW by hand.

The batch repeats token ids, so on TensorFlow the Embedding's gradient is `IndexedSlices` with
repeated rows, the case Keras's own AdamW gets wrong there (`ops.square` of the slices). The
oracle is NumPy float64: the dense gradient of the softmax cross-entropy by hand, then Keras's
AdamW step (decoupled weight decay, then the Adam step with the bias correction folded into
the learning rate).
"""

import keras
import numpy as np
import pytest

from spectralmix.optimizers import AdamW, sum_repeated_rows
from tests.tolerances import TOLERANCES

LR, DECAY, BETA_1, BETA_2, EPSILON = 0.1, 0.01, 0.9, 0.999, 1e-7
TOKENS = np.array([[1, 1, 2, 1], [3, 2, 2, 0], [1, 4, 4, 4]])
LABELS = np.array([0, 1, 1])


def _model(optimizer):
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Embedding(6, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _adamw_step_by_hand(table, kernel, bias):
    table, kernel, bias = (np.asarray(w, np.float64) for w in (table, kernel, bias))
    features = table[TOKENS].reshape(len(TOKENS), -1)
    logits = features @ kernel + bias
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    d_logits = (probabilities - np.eye(2)[LABELS]) / len(TOKENS)  # mean over the batch
    d_features = (d_logits @ kernel.T).reshape((*TOKENS.shape, -1))
    d_table = np.zeros_like(table)
    np.add.at(d_table, TOKENS, d_features)  # repeated ids add up: the dense gradient
    grads = (d_table, features.T @ d_logits, d_logits.sum(0))
    updated = []
    for weight, grad in zip((table, kernel, bias), grads, strict=True):
        weight = weight - LR * DECAY * weight
        m, v = (1 - BETA_1) * grad, (1 - BETA_2) * grad**2
        alpha = LR * np.sqrt(1 - BETA_2) / (1 - BETA_1)
        updated.append(weight - alpha * m / (np.sqrt(v) + EPSILON))
    return updated


def test_one_update_equals_adamw_by_hand_with_repeated_token_ids():
    model = _model(AdamW(LR, weight_decay=DECAY, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON))
    expected = _adamw_step_by_hand(*model.get_weights())
    model.train_on_batch(TOKENS, LABELS)
    for actual, wanted in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(actual, wanted, rtol=0, atol=TOLERANCES["float32_op"])


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="sparse gradients: TF only")
def test_keras_adamw_differs_there_which_is_why_this_exists():
    """The reproduction in the docs: Keras's own AdamW misses the oracle on TensorFlow."""
    model = _model(
        keras.optimizers.AdamW(
            LR, weight_decay=DECAY, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON
        )
    )
    expected = _adamw_step_by_hand(*model.get_weights())
    model.train_on_batch(TOKENS, LABELS)
    table_error = np.abs(model.get_weights()[0] - expected[0]).max()
    assert table_error > 100 * TOLERANCES["float32_op"]


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="sparse gradients: TF only")
def test_sum_repeated_rows_sums_slices_of_the_same_row():
    import tensorflow as tf

    sparse = tf.IndexedSlices(
        tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), tf.constant([2, 0, 2]), (4, 2)
    )
    summed = sum_repeated_rows(sparse)
    assert sorted(summed.indices.numpy().tolist()) == [0, 2]
    np.testing.assert_array_equal(tf.convert_to_tensor(summed), tf.convert_to_tensor(sparse))


def test_adamw_round_trips_through_its_config():
    optimizer = AdamW(LR, weight_decay=DECAY)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is AdamW
    assert restored.get_config() == optimizer.get_config()
