"""Slanted writing brought to MNIST's slant before it is read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.reading.paper_and_ink import MIN_CONTRAST, ink_mask

# Slanted writing. A stroke's slant is how far its ink moves right per pixel down (the covariance of x
# and y over the variance of y, y pointing down); MNIST's digits lean right with a median slant of -0.143
# (about 8 degrees; tests/test_segmentation.py keeps this equal to what the offline sample gives). A line
# whose connected strokes' median slant departs from MNIST's by more than SLANT_MIN (about 14 degrees) is
# sheared to MNIST's before it is read (SLANT_MIN None: never). Only strokes no wider than tall (their
# lean taken off their width) count: two touching digits have a slant of where they sit, not of how they
# lean. Chosen on numbers composed from MNIST test digits (docs/changelog.md): with 0.2 and every
# blob counted, a third of the upright touching pairs were sheared, by mistake.
MNIST_SLANT = -0.143
SLANT_MIN: float | None = 0.25


def slant(weights: np.ndarray) -> float:
    """How far the ink moves right per pixel down (negative: it leans right, as most writing does)."""
    ys, xs = np.indices(weights.shape)
    mass = float(weights.sum())
    if mass <= 0:
        return 0.0
    dy, dx = ys - (weights * ys).sum() / mass, xs - (weights * xs).sum() / mass
    spread = float((weights * dy * dy).sum())
    return float((weights * dx * dy).sum()) / spread if spread > 0 else 0.0


@dataclass
class Shear:
    """x -> x - by * (y - middle) + shift: slanted writing brought to MNIST's slant."""

    by: float
    middle: float
    shift: int

    def apply(self, strokes: np.ndarray, nearest: bool = False) -> np.ndarray:
        """The picture sheared (`nearest`: labels, as `stroke_labels` gives them, moved whole)."""
        from PIL import Image

        height, width = strokes.shape
        wider = width + 2 * self.shift
        # PIL maps each output pixel (x, y) to the input's (x + by * (y - middle) - shift, y)
        kind = (np.int32, "I") if nearest else (np.float32, "F")
        image = Image.fromarray(np.asarray(strokes, kind[0]), kind[1])
        image = image.transform(
            (wider, height),
            Image.Transform.AFFINE,
            (1.0, self.by, -self.by * self.middle - self.shift, 0.0, 1.0, 0.0),
            resample=Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR,
        )
        if nearest:
            return np.asarray(image, np.int32)
        return np.clip(np.asarray(image, np.float32), 0, 255)

    def unshear(self, box: tuple[int, int, int, int], width: int) -> tuple[int, int, int, int]:
        """A box in the sheared strokes as the box around the same ink in the picture."""
        left, top, right, bottom = box
        moves = [self.by * (y - self.middle) - self.shift for y in (top, bottom)]
        return (
            max(0, int(np.floor(left + min(moves)))),
            top,
            min(width, int(np.ceil(right + max(moves)))),
            bottom,
        )


def line_shear(strokes: np.ndarray) -> Shear | None:
    """The shear that brings a slanted line to MNIST's slant (None: it is within SLANT_MIN of it). The
    slant is the median over the line's connected strokes (before strokes stacked over each other are
    merged: slanted neighbours overlap), at least two of them."""
    from scipy import ndimage

    if SLANT_MIN is None or strokes.size == 0 or strokes.max() < MIN_CONTRAST:
        return None
    labels, _ = ndimage.label(ink_mask(strokes), structure=np.ones((3, 3)))
    where = ndimage.find_objects(labels)
    tallest = max(rows.stop - rows.start for rows, _ in where)
    slants = []
    for index, (rows, cols) in enumerate(where, start=1):
        height, width = rows.stop - rows.start, cols.stop - cols.start
        if height < 0.5 * tallest:
            continue
        lean = slant(np.where(labels[rows, cols] == index, strokes[rows, cols], 0))
        # a digit, not a few touching: no wider than tall once its lean is taken off its width
        if width - abs(lean - MNIST_SLANT) * height <= height:
            slants.append(lean)
    if len(slants) < 2:  # one digit's own lean says little about the writing's
        return None
    excess = float(np.median(slants)) - MNIST_SLANT
    if abs(excess) <= SLANT_MIN:
        return None
    return Shear(excess, strokes.shape[0] / 2, int(np.ceil(abs(excess) * strokes.shape[0] / 2)) + 1)
