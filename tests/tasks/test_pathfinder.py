import numpy as np
import pytest

from spectralmix.data import pathfinder as data_lib
from spectralmix.tasks import pathfinder

TINY = {"hidden_dim": 8, "num_layers": 1, "num_heads": 2, "mlp_ratio": 1.0}
SIZES = {"train": 16, "val": 8, "test": 8}


def test_splits_are_the_generator_images_as_pixel_tokens(tmp_path):
    task = pathfinder.task(sizes=SIZES, seed=5, difficulty="easy")
    assert task.name == "pathfinder_easy"
    assert task.sequence_length == 1024
    splits = task.load(None)
    # The files `spectralmix data pathfinder` writes with the same seed hold the same images.
    data_lib.write_splits(tmp_path, SIZES, size=32, difficulty="easy", seed=5)
    for split, data in splits.items():
        images, labels = data_lib.read_split(tmp_path, split, size=32, difficulty="easy")
        assert data.inputs.shape == (SIZES[split], 1024)
        np.testing.assert_array_equal(
            data.inputs, images.reshape(len(images), -1).astype(np.int32) + 1
        )
        np.testing.assert_array_equal(data.labels, labels)
        assert data.labels.sum() == SIZES[split] // 2  # balanced
    assert not np.array_equal(splits["train"].inputs[:8], splits["val"].inputs)
    from_files = pathfinder.task(tmp_path, difficulty="easy").load(4)
    np.testing.assert_array_equal(from_files["test"].inputs, splits["test"].inputs[:4])


def test_path_x_is_128_pixels_a_side():
    task = pathfinder.task(size=128, sizes={"train": 2, "val": 2, "test": 2})
    assert task.name == "pathx"
    assert task.sequence_length == 128 * 128
    assert task.load(None)["val"].inputs.shape == (2, 16_384)


def test_trains_evaluates_and_resumes(tmp_path):
    from spectralmix.tasks import harness

    task = pathfinder.task(sizes=SIZES)
    out = str(tmp_path / "run")
    metrics = harness.train(task, out, epochs=1, verbose=0, model_options=TINY)
    assert metrics["task"] == "pathfinder"
    assert metrics["test_examples"] == 8
    assert metrics["arguments"]["source"]["generated"] == SIZES
    again = harness.train(task, out, epochs=1, resume=True, verbose=0, model_options=TINY)
    assert again["resumed_from_epoch"] == 1
    assert again["test_correct"] == metrics["test_correct"]


def test_missing_files_say_how_to_make_them(tmp_path):
    with pytest.raises(ValueError, match="spectralmix data pathfinder"):
        pathfinder.task(tmp_path).load(None)


def test_the_easy_task_draws_shorter_contours_than_the_arena_default():
    from spectralmix.tasks import registry

    easy = registry.make_task("pathfinder_easy", seed=3).load(6)
    hard = registry.make_task("pathfinder", seed=3).load(6)
    easy_images, _ = data_lib.generate(
        6, size=32, difficulty="easy", seed=data_lib.split_seed(3, "val")
    )
    np.testing.assert_array_equal(
        easy["val"].inputs, easy_images.reshape(6, -1).astype(np.int32) + 1
    )
    # Easy contours are 6 paddles, not 14 (distractors 2, not 4), so fewer pixels are lit.
    lit = {
        name: (splits["train"].inputs > 1).sum()
        for name, splits in (("easy", easy), ("hard", hard))
    }
    assert lit["easy"] < lit["hard"]
    assert registry.get_task("pathfinder_easy").data == "pathfinder"
