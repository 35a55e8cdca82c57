import numpy as np
import pytest

from spectralmix.tasks import digits


def test_split_is_fixed_and_images_are_unchanged():
    x_train, _y_train, x_test, y_test = digits.load_split()
    assert x_train.shape == (1437, 8, 8, 1)
    assert x_test.shape == (360, 8, 8, 1)
    assert set(np.unique(y_test)) == set(range(10))
    again = digits.load_split()
    np.testing.assert_array_equal(again[2], x_test)
    from sklearn.datasets import load_digits

    images = load_digits().images / 16.0
    assert any(np.allclose(x_train[0, ..., 0], img) for img in images)


@pytest.mark.slow
def test_short_training_learns_beyond_chance():
    metrics = digits.train(epochs=3, verbose=0)
    # 10 balanced classes: chance is 0.1. Three epochs already reach far beyond it.
    assert metrics["accuracy"] > 0.5
    assert metrics["test_examples"] == 360
