import os
import zipfile

import numpy as np
import pytest

from spectralmix.data import pathfinder


@pytest.fixture(scope="module", params=["easy", "hard"])
def sample(request):
    """600 images of 32x32 (seed 0) with labels and markers, per difficulty."""
    difficulty = request.param
    images, labels, markers = pathfinder.generate(
        600, difficulty=difficulty, seed=0, return_markers=True
    )
    return difficulty, images, labels, markers


def ink(images: np.ndarray) -> np.ndarray:
    return (images != 0).mean(axis=(1, 2))


def marker_distance(markers: np.ndarray) -> np.ndarray:
    return np.hypot(*(markers[:, 0] - markers[:, 1]).T)


def best_threshold_accuracy(values: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the best rule `label = value > t` (or `<= t`) on the sample itself."""
    ordered = labels[np.argsort(values, kind="stable")]
    ones, zeros = np.cumsum(ordered), np.cumsum(1 - ordered)
    above = (zeros + ordered.sum() - ones) / len(ordered)
    below = (ones + (len(ordered) - ordered.sum()) - zeros) / len(ordered)
    return float(max(above.max(), below.max()))


def test_shapes_dtypes_and_exact_balance():
    images, labels, markers = pathfinder.generate(11, seed=2, return_markers=True)
    assert (images.shape, images.dtype) == ((11, 32, 32), np.uint8)
    assert (labels.shape, labels.dtype) == ((11,), np.int32)
    assert (markers.shape, markers.dtype) == ((11, 2, 2), np.int32)
    assert labels.sum() == 5  # n // 2 positives
    assert 0 < labels[: len(labels) // 2].sum() < 5  # shuffled, not sorted
    two = pathfinder.generate(3, seed=2)
    assert [a.shape for a in two] == [(3, 32, 32), (3,)]


def test_seeded():
    first = pathfinder.generate(20, difficulty="hard", seed=3, return_markers=True)
    again = pathfinder.generate(20, difficulty="hard", seed=3, return_markers=True)
    other = pathfinder.generate(20, difficulty="hard", seed=4, return_markers=True)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[1], other[1])


def test_label_is_the_connectivity_of_the_markers(sample):
    _, images, labels, markers = sample
    assert labels.sum() == 300
    for image, label, (a, b) in zip(images, labels, markers, strict=True):
        assert pathfinder.connected(image, a, b) == bool(label)
        assert image[tuple(a)] == image[tuple(b)] == pathfinder.MARKER_VALUE


def test_ink_amount(sample):
    """Measured on these 600 images (seed 0): nonzero fraction 0.1092 easy (0.101 to 0.117 per
    image) and 0.1489 hard (0.112 to 0.166). The mean ink of positives and negatives differs
    by 0.27% (easy) and 0.88% (hard) of it (seeds 0-5: at most 1.4%, either sign), and the
    best ink threshold classifies 54.0% and 55.2% of the sample itself (seeds 0-5: at most
    56.2%; chance plus the overfit of choosing the threshold on the sample)."""
    difficulty, images, labels, _ = sample
    amount = ink(images)
    low, high = {"easy": (0.10, 0.12), "hard": (0.135, 0.16)}[difficulty]
    assert low < amount.mean() < high
    assert amount.min() > 0.09
    assert amount.max() < 0.18
    positive, negative = amount[labels == 1].mean(), amount[labels == 0].mean()
    assert abs(positive - negative) / amount.mean() < 0.03
    assert best_threshold_accuracy(amount, labels) < 0.6


def test_hard_has_more_ink_than_easy():
    easy, _ = pathfinder.generate(100, difficulty="easy", seed=5)
    hard, _ = pathfinder.generate(100, difficulty="hard", seed=5)
    assert ink(hard).mean() > 1.2 * ink(easy).mean()  # measured: 0.148 against 0.109


def test_markers_far_apart_in_both_classes(sample):
    """The markers' distance does not give the label away: measured means 13.5 px (positives)
    and 13.5 (negatives) easy, 18.7 and 19.4 hard (seeds 0-5: negatives 0.3 px farther on
    average, hard); the best distance threshold classifies 55.3% and 54.2% of the sample."""
    difficulty, _, labels, markers = sample
    distance = marker_distance(markers)
    minimum = pathfinder.PARAMETERS[difficulty]["min_marker_distance"]
    assert distance[labels == 1].min() >= minimum
    assert distance[labels == 0].min() >= minimum
    assert abs(distance[labels == 1].mean() - distance[labels == 0].mean()) < 1.0
    assert best_threshold_accuracy(distance, labels) < 0.6


def test_connected_on_hand_made_images():
    path = np.zeros((5, 5), np.uint8)
    path[0, :4] = 255
    path[:, 3] = 255  # an L: along the top row, then down column 3
    assert pathfinder.connected(path, (0, 0), (4, 3))
    assert pathfinder.connected(path, np.array([4, 3]), [0, 0])
    assert not pathfinder.connected(path, (0, 0), (4, 4))  # b on the background
    assert pathfinder.connected(path, (2, 3), (2, 3))

    pair = np.zeros((5, 5), np.uint8)
    pair[1, :2] = pair[3, 3:] = 7  # two strokes, a blank pixel between
    assert not pathfinder.connected(pair, (1, 0), (3, 4))
    pair[2, 2] = 1  # a single diagonal bridge joins them (8-connectivity)
    assert pathfinder.connected(pair, (1, 0), (3, 4))

    diagonal = np.eye(6, dtype=np.uint8)
    assert pathfinder.connected(diagonal, (0, 0), (5, 5))
    assert pathfinder.connected(diagonal.astype(bool), (5, 5), (0, 0))
    diagonal[3, 3] = 0
    assert not pathfinder.connected(diagonal, (0, 0), (5, 5))


@pytest.mark.parametrize(
    ("image", "a", "b", "message"),
    [
        (np.ones((2, 3, 3)), (0, 0), (1, 1), r"image must be 2-D"),
        (np.ones((3, 3)), (3, 0), (1, 1), r"a must be a \(row, col\) inside"),
        (np.ones((3, 3)), (0, 0), (1, 1, 1), r"b must be a \(row, col\) inside"),
        (np.ones((3, 3)), (0, -1), (1, 1), r"Received: a=\(0, -1\)"),
    ],
)
def test_connected_bad_arguments(image, a, b, message):
    with pytest.raises(ValueError, match=message):
        pathfinder.connected(image, a, b)


def test_path_x_size():
    images, labels, markers = pathfinder.generate(
        6, size=128, difficulty="hard", seed=1, return_markers=True
    )
    assert images.shape == (6, 128, 128)
    assert labels.sum() == 3
    for image, label, (a, b) in zip(images, labels, markers, strict=True):
        assert pathfinder.connected(image, a, b) == bool(label)
    assert 0.05 < ink(images).mean() < 0.08  # measured 0.064: thinner relative to the size
    assert marker_distance(markers).min() >= 4 * 7  # min_marker_distance scales with size


@pytest.mark.parametrize("size", [16, 47])
def test_other_sizes(size):
    images, labels, markers = pathfinder.generate(
        4, size=size, difficulty="hard", return_markers=True
    )
    assert images.shape == (4, size, size)
    for image, label, (a, b) in zip(images, labels, markers, strict=True):
        assert pathfinder.connected(image, a, b) == bool(label)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n": 0}, ValueError, "Received: n=0"),
        ({"n": 2.0}, TypeError, "`n` must be an integer. Received: n=2.0"),
        ({"n": True}, TypeError, "Received: n=True"),
        ({"n": 2, "size": 15}, ValueError, "`size` must be >= 16. Received: size=15"),
        ({"n": 2, "size": "32"}, TypeError, "Received: size='32'"),
        ({"n": 2, "difficulty": "medium"}, ValueError, "Received: difficulty='medium'"),
        ({"n": 2, "seed": -1}, ValueError, "Received: seed=-1"),
        ({"n": 2, "seed": None}, TypeError, "Received: seed=None"),
    ],
)
def test_bad_generate_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        pathfinder.generate(**kwargs)


def test_write_and_read_splits(tmp_path):
    sizes = {"train": 6, "val": 3, "test": 2}
    paths = pathfinder.write_splits(tmp_path / "pf", sizes, difficulty="hard", seed=7)
    assert sorted(paths) == ["test", "train", "val"]
    assert os.path.basename(paths["val"]) == "pathfinder32_hard_val.npz"
    assert sorted(os.listdir(tmp_path / "pf")) == sorted(
        f"pathfinder32_hard_{split}.npz" for split in sizes
    )  # no temporary file left over
    read = {}
    for split, count in sizes.items():
        images, labels = pathfinder.read_split(tmp_path / "pf", split, difficulty="hard")
        assert (images.shape, images.dtype) == ((count, 32, 32), np.uint8)
        assert (labels.dtype, labels.sum()) == (np.int32, count // 2)
        read[split] = images
    assert not np.array_equal(read["train"][:2], read["val"][:2])  # independent seeds
    assert not np.array_equal(read["val"][:2], read["test"])
    # A split does not depend on the others written with it.
    alone = pathfinder.write_splits(tmp_path / "alone", {"val": 3}, difficulty="hard", seed=7)
    np.testing.assert_array_equal(
        pathfinder.read_split(os.path.dirname(alone["val"]), "val", difficulty="hard")[0],
        read["val"],
    )
    first, first_labels = pathfinder.read_split(
        tmp_path / "pf", "train", difficulty="hard", limit=4
    )
    np.testing.assert_array_equal(first, read["train"][:4])
    assert first_labels.shape == (4,)
    assert len(pathfinder.read_split(tmp_path / "pf", "val", difficulty="hard", limit=99)[0]) == 3


def test_missing_file_says_how_to_make_it(tmp_path):
    with pytest.raises(ValueError, match="No Pathfinder file") as raised:
        pathfinder.read_split(tmp_path, "val", size=64, difficulty="hard")
    message = str(raised.value)
    assert "pathfinder64_hard_val.npz" in message
    assert f"spectralmix data pathfinder --out {tmp_path} --difficulty hard --size 64" in message


def test_corrupted_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "pathfinder32_easy_test.npz"
    path.write_bytes(b"\x00garbage, not a zip archive\n" * 10)
    with pytest.raises(ValueError, match="pathfinder32_easy_test.npz") as raised:
        pathfinder.read_split(tmp_path, "test")
    assert "not an .npz (zip) archive" in str(raised.value)
    assert "\n" not in str(raised.value)
    with zipfile.ZipFile(path, "w") as archive:  # a zip whose arrays are not .npy data
        archive.writestr("images.npy", b"garbage")
        archive.writestr("labels.npy", b"garbage")
    with pytest.raises(ValueError, match=r"pathfinder32_easy_test.npz' is not a valid") as raised:
        pathfinder.read_split(tmp_path, "test")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": np.zeros((2, 32, 32), np.uint8)}, "no array 'labels'"),
        ({"pictures": np.zeros((2, 32, 32), np.uint8)}, "no array 'images' or 'labels'"),
        ({"images": np.zeros((2, 32, 32), np.float32), "labels": [0, 1]}, "uint8"),
        ({"images": np.zeros((2, 16, 16), np.uint8), "labels": [0, 1]}, r"\(2, 16, 16\)"),
        ({"images": np.zeros((2, 32, 32), np.uint8), "labels": [0, 2]}, "0 or 1"),
        ({"images": np.zeros((2, 32, 32), np.uint8), "labels": [0.0, 1.0]}, "integers"),
        ({"images": np.zeros((2, 32, 32), np.uint8), "labels": [0, 1, 1]}, "2 images but 3"),
    ],
)
def test_invalid_file_contents(tmp_path, arrays, message):
    path = tmp_path / "pathfinder32_easy_train.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as raised:
        pathfinder.read_split(tmp_path, "train")
    assert "pathfinder32_easy_train.npz" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def savez_compressed(file, **arrays):
        file.write(b"half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(pathfinder.np, "savez_compressed", savez_compressed)
    with pytest.raises(OSError, match="disk full"):
        pathfinder.write_splits(tmp_path, {"test": 2})
    assert list(tmp_path.iterdir()) == []


def test_write_splits_refuses_a_file_as_out_before_generating(tmp_path, monkeypatch):
    out = tmp_path / "splits"
    out.write_text("keep")

    def generate(*args, **kwargs):
        raise AssertionError("generated before checking out")

    monkeypatch.setattr(pathfinder, "generate", generate)
    with pytest.raises(ValueError, match=r"a file exists there\. Received: out='.*splits'"):
        pathfinder.write_splits(out, {"test": 1})
    assert out.read_text() == "keep"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda d: pathfinder.write_splits(d, {"dev": 2}), ValueError, r"\['dev'\]"),
        (lambda d: pathfinder.write_splits(d, {"val": 0}), ValueError, r"sizes\['val'\]=0"),
        (lambda d: pathfinder.write_splits(d, {}), ValueError, "sizes must be a non-empty"),
        (lambda d: pathfinder.write_splits(d, {"val": 2}, size=8), ValueError, "size=8"),
        (lambda d: pathfinder.read_split(d, "dev"), ValueError, "Received: split='dev'"),
        (lambda d: pathfinder.read_split(d, "val", limit=0), ValueError, "limit=0"),
        (lambda d: pathfinder.read_split(d, "val", limit=1.5), ValueError, "limit=1.5"),
        (lambda d: pathfinder.read_split(d, "val", difficulty="x"), ValueError, "difficulty='x'"),
    ],
)
def test_bad_split_arguments(tmp_path, call, error, message):
    with pytest.raises(error, match=message):
        call(tmp_path)
    assert list(tmp_path.iterdir()) == []
