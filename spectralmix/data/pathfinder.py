"""A seeded generator of LRA Pathfinder images, after the published recipe.

Pathfinder (Linsley et al., 2018, "Learning long-range spatial dependencies with horizontal
gated recurrent units"; generator `snakes2.py` in github.com/drewlinsley/pathfinder) asks
whether two round marker dots are joined by one path. Long Range Arena (Tay et al., 2021)
uses it at 32x32 (1,024 tokens, pixel by pixel) and as Path-X at 128x128 (16,384 tokens).
An image holds contours ("snakes"): chains of short straight paddles separated by small gaps,
each paddle turned from the previous one by a random angle of density
`cos(continuity * delta) ** 2` on `|delta| < pi / (2 * continuity)` (`snakes2.get_coords_cmf`),
so the curves are smooth. Two target contours of `contour_length` paddles carry the markers:
a positive image has the dots at the two ends of one contour, a negative one dot at an end of
each. Shorter distractor contours clutter the image. LRA's pathfinder32 settings are
`paddle_length=2`, `marker_radius=1.5`, `continuity=1.0`, `seed_distance=7`,
`distractor_length = contour_length // 3`, `num_distractor_snakes = 20 // distractor_length`
and contour lengths 6 ("curv_baseline", our `"easy"`) and 14 ("curv_contour_length_14", our
`"hard"`); `PARAMETERS` holds the same numbers (for 32x32).

Differences, so that the label is exactly the connectivity of the markers and nothing else
gives it away:

- Every image is checked with `connected` (an 8-connected flood fill over the nonzero pixels)
  and drawn again unless the markers' connectivity is its label.
- Contours never touch: each is placed (uniformly among the positions where it fits) only
  `clearance` empty pixels away from every other contour and marker, and the two target
  contours also keep clear of a marker-sized dot at each of their four ends.
- The gap between paddles is under a pixel (`paddle_gap`), so rasterised it closes: the next
  paddle's first pixel is 8-adjacent to the previous one's last (a visible gap would cut the
  path for the flood fill). No anti-aliasing: strokes are sampled every half pixel and
  rounded.
- Both classes draw the same scene: a first target contour whose ends are `span >=
  min_marker_distance` apart, and a second with an end within `marker_distance_tolerance` of
  `span` from an end of the first. Positives mark the first contour's two ends, negatives
  that end of the first and that end of the second, so the ink and the markers' distance
  have the same distribution in both classes (the tests measure it).

Other sizes scale the geometry by `s = size / 32`: lengths (`paddle_length`,
`min_marker_distance`, `marker_distance_tolerance`) by `s`, widths (`stroke_width`,
`marker_radius`, `clearance`, `padding`) by `sqrt(s)` rounded, so at 128 paddles are 8 px,
strokes 2 px and markers of radius 3 (Path-X's `marker_radius=3`); contour lengths in paddles
stay. Pixels are uint8: background 0, strokes one grey level per image drawn from 128..255,
markers 255.

Plain numpy. Measured on one core of the 2-core CPU: 10,000 images of 32x32 in 14 to 18 s
(easy) and 25 to 31 s (hard), 200 images of 128x128 in 1.4 to 2.8 s (the ranges: other jobs
sharing the CPU or not). Nonzero pixels: 10.9% (easy) and 14.9%
(hard) at 32x32, 4.5% and 6.4% at 128x128.

Examples:
    >>> images, labels, markers = generate(4, seed=0, return_markers=True)
    >>> images.shape, images.dtype, int(labels.sum())
    ((4, 32, 32), dtype('uint8'), 2)
    >>> [connected(x, a, b) == bool(y) for x, (a, b), y in zip(images, markers, labels)]
    [True, True, True, True]
    >>> dots = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], np.uint8)
    >>> connected(dots, (0, 0), (1, 1)), connected(dots, (0, 0), (2, 2))
    (True, False)
"""

from __future__ import annotations

import os
import shlex
import tempfile
import zipfile
import zlib

import numpy as np

from spectralmix.validation import choice, integer, optional_positive_int

#: Geometry at 32x32 (lengths in pixels; see the module docstring for other sizes).
PARAMETERS: dict[str, dict[str, float | int]] = {
    "easy": {
        "contour_length": 6,  # paddles per target contour (LRA's "curv_baseline")
        "distractor_length": 2,  # contour_length // 3
        "num_distractors": 10,  # 20 // distractor_length
        "paddle_length": 2.0,
        "paddle_gap": 0.75,  # px, never scaled up: under a pixel, rasterised it closes
        "continuity": 1.0,  # turns of density cos(continuity * delta) ** 2
        "marker_radius": 1.5,
        "min_marker_distance": 7.0,  # LRA's seed_distance
        "marker_distance_tolerance": 1.0,  # negatives: |distance - first contour's span|
        "stroke_width": 1,
        "clearance": 1,  # empty pixels between different contours
        "padding": 1,  # empty border
    },
    "hard": {
        "contour_length": 14,  # LRA's "curv_contour_length_14"
        "distractor_length": 4,
        "num_distractors": 5,
        "paddle_length": 2.0,
        "paddle_gap": 0.75,
        "continuity": 1.0,
        "marker_radius": 1.5,
        "min_marker_distance": 7.0,
        "marker_distance_tolerance": 1.0,
        "stroke_width": 1,
        "clearance": 1,
        "padding": 1,
    },
}
DIFFICULTIES = tuple(PARAMETERS)
SPLITS = ("train", "val", "test")
MARKER_VALUE = 255
#: Strokes take one grey level per image from this range (inclusive).
STROKE_VALUES = (128, 255)

_TARGET_SHAPES = 16  # target shapes drawn at once
_TARGET_TRIES = 5  # batches of target shapes before the image is started again
_SECOND_TRIES = 4  # batches for the second target contour, from either end of the first
_DISTRACTOR_SHAPES = 2  # shapes drawn per distractor; one that fits nowhere is left out
_PLACEMENTS = 128  # random (shape, position) pairs checked against what is already drawn
_IMAGE_TRIES = 1000

# Turning angles: x = continuity * delta has density cos(x) ** 2 on (-pi/2, pi/2), with
# distribution function (x + pi/2 + sin(2x) / 2) / pi; drawn from a table of its quantiles.
_TURN_X = np.linspace(-np.pi / 2, np.pi / 2, 4097)
_TURN_QUANTILES = np.interp(
    (np.arange(4096) + 0.5) / 4096, (_TURN_X + np.pi / 2 + np.sin(2 * _TURN_X) / 2) / np.pi, _TURN_X
)


class _Geometry:
    """`PARAMETERS[difficulty]` scaled to `size`, with the pixel offsets it draws with."""

    def __init__(self, size: int, difficulty: str):
        p = PARAMETERS[difficulty]
        s = size / 32
        w = np.sqrt(s)
        self.size = size
        self.contour_length = int(p["contour_length"])
        self.distractor_length = int(p["distractor_length"])
        self.num_distractors = int(p["num_distractors"])
        self.paddle_length = p["paddle_length"] * s
        self.step = self.paddle_length + p["paddle_gap"] * min(s, 1.0)
        self.continuity = p["continuity"]
        # Divides the cumulated draws: the first is the heading, the others turns.
        self.turn_scale = np.array([1.0] + [self.continuity] * (self.contour_length - 1))
        self.min_distance = p["min_marker_distance"] * s
        self.tolerance = p["marker_distance_tolerance"] * s
        stroke = max(1, round(p["stroke_width"] * w))
        clearance = max(1, round(p["clearance"] * w))
        radius = p["marker_radius"] * w
        # Points every half pixel along a paddle: consecutive pixels are 8-adjacent.
        self.along = self.paddle_length * np.linspace(
            0.0, 1.0, int(np.ceil(2 * self.paddle_length)) + 1
        )
        # Flat offsets of a stroke's square pen, of a marker's disc and of the clearance.
        pen = np.arange(stroke) - (stroke - 1) // 2
        self.pen = (pen[:, None] * size + pen[None, :]).ravel()
        r = int(np.floor(radius))
        dr, dc = np.mgrid[-r : r + 1, -r : r + 1]
        inside = dr**2 + dc**2 <= radius**2
        self.disc = (dr[inside] * size + dc[inside]).ravel()
        c = np.arange(-clearance, clearance + 1)
        self.halo = (c[:, None] * size + c[None, :]).ravel()
        # Bounds for the pixels of a contour, so that no flat offset (pen, halo) leaves the
        # image or wraps around a row; the ends of target contours also leave room for a
        # marker and its clearance.
        padding = max(1, round(p["padding"] * w), clearance)
        self.low = padding + (stroke - 1) // 2
        self.high = size - 1 - padding - stroke // 2
        self.end_low = r + clearance
        self.end_high = size - 1 - r - clearance


def _shapes(rng: np.random.Generator, geometry: _Geometry, length: int, batch: int):
    """`batch` random contours of `length` paddles, started near the origin at a random
    sub-pixel phase: their pixels `(batch, points, 2)` as `(row, col)`, ends first and last."""
    turns = _TURN_QUANTILES[rng.integers(0, len(_TURN_QUANTILES), (batch, length))]
    turns[:, 0] = rng.uniform(-np.pi, np.pi, batch)  # the first "turn" is the heading
    heading = np.cumsum(turns / geometry.turn_scale[:length], axis=1)
    coords = []
    for direction in (np.sin(heading), np.cos(heading)):  # rows, then columns
        starts = np.empty((batch, length))
        starts[:, 0] = rng.random(batch)
        np.cumsum(geometry.step * direction[:, :-1], axis=1, out=starts[:, 1:])
        starts[:, 1:] += starts[:, :1]
        points = starts[:, :, None] + geometry.along * direction[:, :, None]
        coords.append(np.rint(points.reshape(batch, -1)).astype(np.int64))
    return np.stack(coords, axis=-1)


def _flat(pixels: np.ndarray, size: int) -> np.ndarray:
    return pixels[..., 0] * size + pixels[..., 1]


def _spread(flat: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Flat pixels `(..., k)` each widened by `offsets` into `(..., k * len(offsets))`."""
    return (flat[..., None] + offsets).reshape(*flat.shape[:-1], -1)


def _span(ends: np.ndarray) -> np.ndarray:
    """Distances between the two ends `(..., 2, 2)`."""
    return np.hypot(*np.moveaxis(ends[..., 0, :] - ends[..., 1, :], -1, 0))


def _placements(rng, geometry: _Geometry, shapes, blocked, *, target: bool, near=None):
    """Random placements of contours `shapes` `(k, points, 2)` (drawn near the origin) inside
    the bounds, with their footprints (strokes, and for targets dots at both ends) off
    `blocked`: uniform over the (shape, shift) pairs that fit, as rejection sampling would be.

    Returns the flat strokes `(n, s)`, footprints `(n, f)` and ends `(n, 2, 2)` of `n <=
    _PLACEMENTS` placements (repeats possible), the shape index of each, and which are clear.
    `near=(point, distance)` keeps the shifts that put an end within `tolerance` of
    `distance` from `point` and at least `min_marker_distance` away.
    """
    size = geometry.size
    ends = shapes[:, [0, -1]]
    low = geometry.low - shapes.min(axis=1)
    high = geometry.high - shapes.max(axis=1)
    if target:
        low = np.maximum(low, geometry.end_low - ends.min(axis=1))
        high = np.minimum(high, geometry.end_high - ends.max(axis=1))
    first, last = low.min(axis=0), high.max(axis=0)
    if (first > last).any():
        return None
    rows, cols = np.arange(first[0], last[0] + 1), np.arange(first[1], last[1] + 1)
    fits = ((rows >= low[:, :1]) & (rows <= high[:, :1]))[:, :, None] & (
        (cols >= low[:, 1:]) & (cols <= high[:, 1:])
    )[:, None, :]  # (k, rows, cols)
    if near is not None:
        point, distance = near
        ring = np.zeros_like(fits)
        for end in (0, 1):
            dr = ends[:, end, :1] + rows - point[0]
            dc = ends[:, end, 1:] + cols - point[1]
            gap = np.hypot(dr[:, :, None], dc[:, None, :])
            ring |= (np.abs(gap - distance) <= geometry.tolerance) & (gap >= geometry.min_distance)
        fits &= ring
    shape, row, col = np.nonzero(fits)
    if not shape.size:
        return None
    pick = rng.integers(0, shape.size, min(_PLACEMENTS, shape.size))
    shape, shift = shape[pick], np.stack([rows[row[pick]], cols[col[pick]]], axis=-1)
    move = _flat(shift, size)[:, None]
    strokes = _spread(_flat(shapes, size), geometry.pen)[shape] + move
    footprints = strokes
    if target:
        dots = _spread(_flat(ends, size), geometry.disc)[shape] + move
        footprints = np.concatenate([strokes, dots], axis=1)
    clear = ~blocked[footprints].any(axis=1)
    return strokes, footprints, ends[shape] + shift[:, None, :], shape, clear


def _target(rng, geometry: _Geometry, blocked, near=None, tries: int = _TARGET_TRIES):
    """A target contour (flat stroke, ends, flat footprint) off `blocked`, or None."""
    for _ in range(tries):
        shapes = _shapes(rng, geometry, geometry.contour_length, _TARGET_SHAPES)
        shapes = shapes[_span(shapes[:, [0, -1]]) >= geometry.min_distance]
        if not len(shapes):
            continue
        placed = _placements(rng, geometry, shapes, blocked, target=True, near=near)
        if placed is not None and placed[-1].any():
            i = np.argmax(placed[-1])
            return placed[0][i], placed[2][i], placed[1][i]
    return None


def _draw(rng: np.random.Generator, geometry: _Geometry, label: int):
    """One image with the given label and its markers, or None when a contour did not fit."""
    size = geometry.size
    blocked = np.zeros(size * size, bool)
    first = _target(rng, geometry, blocked)
    if first is None:
        return None
    blocked[_spread(first[2], geometry.halo)] = True
    span = float(_span(first[1]))
    # Both classes draw the same scene: the second contour has an end about `span` from an
    # end of the first. A positive marks the first contour's ends (`span` apart), a negative
    # that end of the first and the second's end (about `span` apart), so neither the scene
    # nor the markers' distance tells the classes apart.
    end = rng.integers(2)
    for attempt in range(_SECOND_TRIES):
        marker = first[1][(end + attempt) % 2]
        second = _target(rng, geometry, blocked, near=(marker, span), tries=1)
        if second is not None:
            break
    else:
        return None
    if label:
        markers = first[1]
    else:
        gaps = np.hypot(*(second[1] - marker).T)
        options = np.flatnonzero(
            (np.abs(gaps - span) <= geometry.tolerance) & (gaps >= geometry.min_distance)
        )
        markers = np.stack([marker, second[1][rng.choice(options)]])
    markers = markers[rng.permutation(2)]
    dots = _spread(_flat(markers, size), geometry.disc)
    # Distractors keep clear of what is drawn: the strokes and the two markers.
    ink = [first[0], second[0]]
    blocked[:] = False
    blocked[_spread(np.concatenate([*ink, dots]), geometry.halo)] = True
    shapes = _shapes(
        rng, geometry, geometry.distractor_length, geometry.num_distractors * _DISTRACTOR_SHAPES
    )
    placed = _placements(rng, geometry, shapes, blocked, target=False)
    if placed is not None:
        # Clear of the targets; taken one by one, each clear of the ones before, each shape
        # at most once.
        strokes, _, _, shape, clear = placed
        used = set()
        for i in np.flatnonzero(clear):
            if shape[i] not in used and not blocked[strokes[i]].any():
                used.add(shape[i])
                ink.append(strokes[i])
                blocked[_spread(strokes[i], geometry.halo)] = True
                if len(used) == geometry.num_distractors:
                    break
    image = np.zeros(size * size, np.uint8)
    image[np.concatenate(ink)] = rng.integers(STROKE_VALUES[0], STROKE_VALUES[1], endpoint=True)
    image[dots] = MARKER_VALUE
    image = image.reshape(size, size)
    if connected(image, markers[0], markers[1]) != bool(label):
        return None
    return image, markers


def generate(
    n: int,
    *,
    size: int = 32,
    difficulty: str = "easy",
    seed: int = 0,
    return_markers: bool = False,
):
    """`n` Pathfinder images and their labels (1: the markers are joined by one path).

    Args:
        n: number of images; `n // 2` are positive, the rest negative, in a seeded order.
        size: image side in pixels, at least 16 (LRA: 32; Path-X: 128).
        difficulty: `"easy"` or `"hard"`, a key of `PARAMETERS`.
        seed: seed of the numpy Generator; the same seed gives the same images.
        return_markers: also return the marker centres.

    Returns:
        `(images, labels)`: uint8 `(n, size, size)` and int32 `(n,)`; with `return_markers`
        a third int32 array `(n, 2, 2)` of the two markers' `(row, col)`.
    """
    integer("n", n, 1)
    integer("size", size, 16)
    choice("difficulty", difficulty, DIFFICULTIES)
    integer("seed", seed, 0)
    rng = np.random.default_rng(int(seed))
    geometry = _Geometry(int(size), difficulty)
    labels = rng.permutation(np.repeat(np.array([1, 0], np.int32), [n // 2, n - n // 2]))
    images = np.zeros((n, size, size), np.uint8)
    markers = np.zeros((n, 2, 2), np.int32)
    for index, label in enumerate(labels):
        for _ in range(_IMAGE_TRIES):
            drawn = _draw(rng, geometry, int(label))
            if drawn is not None:
                break
        else:  # pragma: no cover - the geometry leaves ample room at every size >= 16
            raise RuntimeError(f"Could not draw a {size}x{size} {difficulty} Pathfinder image")
        images[index], markers[index] = drawn
    if return_markers:
        return images, labels, markers
    return images, labels


def connected(image, a, b) -> bool:
    """Whether pixels `a` and `b` (`(row, col)`) lie on one 8-connected set of nonzero pixels.

    Examples:
        >>> path = np.zeros((4, 4), np.uint8)
        >>> path[0, :3] = path[1:, 2] = 1  # an L
        >>> connected(path, (0, 0), (3, 2)), connected(path, (0, 0), (3, 3))
        (True, False)
    """
    ink = np.asarray(image)
    if ink.ndim != 2:
        raise ValueError(f"image must be 2-D. Received: image.shape={ink.shape}")
    height, width = ink.shape
    points = []
    for name, point in (("a", a), ("b", b)):
        coords = np.asarray(point)
        row, col = (int(v) for v in coords.ravel()) if coords.size == 2 else (-1, -1)
        if not (0 <= row < height and 0 <= col < width):
            raise ValueError(
                f"{name} must be a (row, col) inside the {height}x{width} image. "
                f"Received: {name}={point!r}"
            )
        points.append((row + 1) * (width + 2) + col + 1)
    padded = np.zeros((height + 2, width + 2), bool)  # a zero border: no bounds checks
    padded[1:-1, 1:-1] = ink != 0
    free = padded.ravel().tolist()
    start, goal = points
    if not (free[start] and free[goal]):
        return False
    stride = width + 2
    steps = (-stride - 1, -stride, -stride + 1, -1, 1, stride - 1, stride, stride + 1)
    free[start] = False
    stack = [start]
    while stack:
        i = stack.pop()
        if i == goal:
            return True
        for step in steps:
            j = i + step
            if free[j]:
                free[j] = False
                stack.append(j)
    return False


def split_path(
    directory: str | os.PathLike, split: str, *, size: int = 32, difficulty: str = "easy"
) -> str:
    """`DIR/pathfinder{size}_{difficulty}_{split}.npz` (whether or not it exists)."""
    choice("split", split, SPLITS)
    integer("size", size, 16)
    choice("difficulty", difficulty, DIFFICULTIES)
    return os.path.join(os.fspath(directory), f"pathfinder{size}_{difficulty}_{split}.npz")


def split_seed(seed: int, split: str) -> int:
    """Independent seeds per split, from `SeedSequence(seed).spawn` (by the split's place in
    `SPLITS`, so a split's images do not depend on which other splits are written)."""
    child = np.random.SeedSequence(seed).spawn(len(SPLITS))[SPLITS.index(split)]
    return int(child.generate_state(1)[0])


def write_splits(
    out: str | os.PathLike,
    sizes: dict[str, int],
    *,
    size: int = 32,
    difficulty: str = "easy",
    seed: int = 0,
) -> dict[str, str]:
    """Generates and writes `OUT/pathfinder{size}_{difficulty}_{split}.npz` (compressed,
    arrays `images` and `labels`) for each split of `sizes`, atomically; returns the paths.
    The splits are drawn from independent seeds derived from `seed`."""
    if not isinstance(sizes, dict) or not sizes:
        raise ValueError(f"sizes must be a non-empty dict split -> count. Received: {sizes!r}")
    unknown = sorted(set(sizes) - set(SPLITS), key=str)
    if unknown:
        raise ValueError(f"sizes keys must be among {SPLITS}. Received: {unknown}")
    for split, count in sizes.items():
        integer(f"sizes[{split!r}]", count, 1)
    integer("size", size, 16)
    choice("difficulty", difficulty, DIFFICULTIES)
    integer("seed", seed, 0)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(
            "out must be a directory (it is made if missing), but a file exists there. "
            f"Received: out={os.fspath(out)!r}"
        )
    os.makedirs(out, exist_ok=True)
    paths = {}
    for split, count in sizes.items():
        images, labels = generate(
            count, size=size, difficulty=difficulty, seed=split_seed(seed, split)
        )
        path = split_path(out, split, size=size, difficulty=difficulty)
        handle, tmp = tempfile.mkstemp(dir=os.fspath(out), prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as f:
                np.savez_compressed(f, images=images, labels=labels)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        paths[split] = path
    return paths


def read_split(
    directory: str | os.PathLike,
    split: str,
    *,
    size: int = 32,
    difficulty: str = "easy",
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reads a file written by `write_splits`: uint8 images `(n, size, size)` and int32
    labels `(n,)`, only the first `limit` examples when `limit` is given."""
    path = split_path(directory, split, size=size, difficulty=difficulty)
    optional_positive_int("limit", limit)
    make = (
        f"`spectralmix data pathfinder --out {shlex.quote(os.fspath(directory))} "
        f"--difficulty {difficulty} --size {size}`"
    )
    if not os.path.isfile(path):
        raise ValueError(f"No Pathfinder file at {path!r}. Make it with {make}.")
    images = labels = None
    if not zipfile.is_zipfile(path):
        problem = "not an .npz (zip) archive"
    else:
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [name for name in ("images", "labels") if name not in data.files]
                if not missing:
                    images, labels = data["images"], data["labels"]
            problem = f"no array {' or '.join(map(repr, missing))}" if missing else None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            problem = " ".join(str(error).split()) or type(error).__name__
    if problem is None:
        if not (isinstance(images, np.ndarray) and isinstance(labels, np.ndarray)):
            problem = "its 'images' and 'labels' are not numpy arrays"
        elif images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (size, size):
            problem = f"images must be uint8 (n, {size}, {size}), got {images.dtype} {images.shape}"
        elif labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            problem = f"labels must be integers (n,), got {labels.dtype} {labels.shape}"
        elif len(labels) != len(images):
            problem = f"{len(images)} images but {len(labels)} labels"
        elif not np.isin(labels, (0, 1)).all():
            problem = f"labels must be 0 or 1, got {np.unique(labels).tolist()}"
    if problem is not None:
        raise ValueError(
            f"{path!r} is not a valid Pathfinder file: {problem}. Make it again with {make}."
        )
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels.astype(np.int32)
