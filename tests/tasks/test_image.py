import numpy as np
import pytest

from spectralmix.tasks import harness, image
from tests.data.test_fashion_mnist import _small_data

TINY = {"hidden_dim": 8, "num_layers": 1, "num_heads": 2, "mlp_ratio": 1.0}


@pytest.fixture
def fake_fashion_mnist(tmp_path):
    """40 training images (4 of each class) and 3 test images, in the Debian files' format."""
    directory = tmp_path / "fashion"
    directory.mkdir()
    arrays = _small_data(directory, n_train=40, n_test=3)
    return str(directory), arrays


def test_images_become_1024_grey_level_tokens_padded_with_black(fake_fashion_mnist):
    directory, arrays = fake_fashion_mnist
    splits = image.task(directory, val_per_class=1).load(None)
    test = splits["test"]
    assert test.inputs.shape == (3, 1024)
    grid = test.inputs.reshape(3, 32, 32)
    np.testing.assert_array_equal(grid[:, 2:30, 2:30], arrays["test"][0].astype(np.int32) + 1)
    assert (grid[:, :2] == 1).all()  # a black border: grey level 0 is token 1
    assert (grid[:, :, 30:] == 1).all()
    np.testing.assert_array_equal(test.labels, arrays["test"][1])


def test_validation_is_held_out_of_training_stratified_and_seeded(fake_fashion_mnist):
    directory, _ = fake_fashion_mnist
    splits = image.load_splits(directory, val_per_class=2, seed=1)
    train_images, _ = splits["train"]
    val_images, val_labels = splits["val"]
    assert len(train_images) == 20
    assert np.bincount(val_labels, minlength=10).tolist() == [2] * 10
    train_rows = {x.tobytes() for x in train_images}
    assert not any(x.tobytes() in train_rows for x in val_images)
    again = image.load_splits(directory, val_per_class=2, seed=1)["val"][0]
    other = image.load_splits(directory, val_per_class=2, seed=2)["val"][0]
    np.testing.assert_array_equal(again, val_images)
    assert not np.array_equal(other, val_images)


def test_test_examples_keeps_the_first_test_images(fake_fashion_mnist):
    directory, arrays = fake_fashion_mnist
    test_images, _ = image.load_splits(directory, val_per_class=1, test_examples=2)["test"]
    np.testing.assert_array_equal(test_images, arrays["test"][0][:2])


def test_trains_evaluates_and_resumes(fake_fashion_mnist, tmp_path):
    directory, _ = fake_fashion_mnist
    task = image.task(directory, val_per_class=1)
    out = str(tmp_path / "run")
    metrics = harness.train(task, out, epochs=1, verbose=0, model_options=TINY)
    assert (metrics["train_examples"], metrics["val_examples"], metrics["test_examples"]) == (
        30,
        10,
        3,
    )
    again = harness.train(task, out, epochs=1, resume=True, verbose=0, model_options=TINY)
    assert again["test_correct"] == metrics["test_correct"]


def test_missing_data_says_how_to_install_it(tmp_path):
    with pytest.raises(ValueError, match="apt-get install dataset-fashion-mnist"):
        image.task(tmp_path / "nowhere")
