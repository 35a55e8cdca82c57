import numpy as np
import pytest

from spectralmix.layers import DropPath
from tests.helpers import to_numpy


def test_identity_at_inference():
    x = np.random.default_rng(0).standard_normal((8, 3, 2)).astype("float32")
    np.testing.assert_array_equal(to_numpy(DropPath(0.7)(x, training=False)), x)


def test_drops_whole_samples_and_keeps_the_mean():
    x = np.ones((4000, 3, 2), "float32")
    y = to_numpy(DropPath(0.25, seed=3)(x, training=True))
    per_sample = y.reshape(4000, -1)
    # Each sample is either all zeros or all 1/(1-rate).
    assert set(np.unique(per_sample)) <= {0.0, np.float32(1 / 0.75)}
    assert (per_sample.min(1) == per_sample.max(1)).all()
    kept = (per_sample[:, 0] > 0).mean()
    # Binomial(4000, 0.75): 5 standard deviations is about 0.034.
    assert abs(kept - 0.75) < 0.035
    assert abs(y.mean() - 1.0) < 0.05


def test_config_and_bad_rate():
    layer = DropPath(0.1, seed=4)
    assert DropPath.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="rate=1.0"):
        DropPath(1.0)
