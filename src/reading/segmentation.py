"""From a picture of hand-written digits to MNIST-like 28x28 crops, left to right.

One place for the reading pipeline that `src.predict` and `src.draw` share: decode, find the ink
(either polarity), find the blobs of ink (connected strokes; strokes stacked over each other merged),
and normalise each digit the way MNIST was made: fit into a 20x20 box keeping its aspect ratio, then
centre its centre of mass in a 28x28 field, white on black.

Where one digit ends and the next begins is decided by recognition (`read_line`): a blob that could
hold one to three digits is cut at candidate columns (ink minima), every piece is classified, and the
reading is the segmentation with the highest joint score: the classifier's log-probability of each
piece, a prior on each piece's shape given its class (its width to height, as MNIST's digits of that
class have it), and a cost for each cut by the strokes it crosses. A wide digit that reads confidently
stays whole; two touching digits come apart. Two blobs side by side that overlap left to right (a digit
in two strokes, a broken line) are also read as one, and joined where that reads clearly better and one
of them reads poorly alone.

The steps live by concern beside this module, which reads a line with them (and gives every step's
public name, as before): `picture` (decode, the working size), `paper_and_ink` (which pixels are ink,
stroke width, `mnist_style`), `blobs_and_strokes` (blobs, pen strokes), `shear` (slanted writing),
`cuts` (cut candidates, pieces, the best split of a blob) and `shapes` (the shape prior).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from src.reading.blobs_and_strokes import Blob, blobs, segment, stroke_labels
from src.reading.cuts import (
    CANDIDATES,
    CROSSING_COST,
    CUT_COST,
    DIGIT_SCORE_WEIGHT,
    MAX_PER_BLOB,
    SHORT,
    SHORT_COST,
    Piece,
    _best_split,
    blob_pieces,
    crossings,
    cut_candidates,
    reads_alone,
)
from src.reading.paper_and_ink import (
    EVEN_BORDER,
    FINE_PEN,
    MIN_CONTRAST,
    dark_ink,
    even_border,
    ink,
    ink_mask,
    mnist_style,
    paper,
    stroke_width,
)
from src.reading.picture import MAX_PIXELS, WORK_SIZE, at_work_size, decode, larger_picture, picture_size
from src.reading.shapes import measure_shape_prior, shape_prior
from src.reading.shear import MNIST_SLANT, SLANT_MIN, Shear, line_shear, slant

# The modules a picture is cut by (paths under src/): the reading model carries them as its code, and the
# crop cache keys its crops on them.
MODULES = (
    "reading/segmentation.py",
    "reading/picture.py",
    "reading/paper_and_ink.py",
    "reading/blobs_and_strokes.py",
    "reading/shear.py",
    "reading/cuts.py",
    "reading/shapes.py",
)

# What this module gives (the steps' names too: callers and registered models' code import them here).
# A step's constant is read in its own module: change it there (`cuts.DIGIT_SCORE_WEIGHT`), not here.
__all__ = [
    "CANDIDATES", "CROSSING_COST", "CUT_COST", "DIGIT_SCORE_WEIGHT", "EVEN_BORDER", "FINE_PEN", "MAX_DIGITS",
    "MAX_MARKS", "MAX_PER_BLOB", "MAX_PIXELS", "MERGE_COST", "MIN_CONTRAST", "MNIST_SLANT", "PIECE_HEIGHT",
    "SHORT", "SHORT_COST", "SLANT_MIN", "SMALL_SCALE", "SMALL_TARGET", "SMALL_WRITING", "WEAK",
    "WORK_SIZE", "Blob",
    "Classify", "DigitCrop", "NotALine", "Piece", "Shear", "_best_split", "at_work_size", "blob_pieces",
    "blobs", "crossings", "cut_candidates", "dark_ink", "decode", "digit_crops", "even_border", "ink",
    "ink_mask", "larger_picture", "line_shear", "measure_shape_prior", "mnist_style", "paper",
    "picture_size", "read_line", "segment", "shape_prior", "slant", "small_writing_scale",
    "stroke_labels", "stroke_width",
]  # fmt: skip

# (N, 28, 28) uint8 crops -> their (N, 10) probabilities and (N,) digit scores (None: no digit score)
Classify = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]

# A line holds up to MAX_DIGITS digits; a picture with more than MAX_MARKS separate marks (after the
# strokes of one digit are put together) is not a line of digits: scattered dots, text, a texture.
MAX_DIGITS = 20
# Writing whose blobs stand under SMALL_WRITING pixels tall (their median) is read SMALL_TARGET pixels tall,
# at most SMALL_SCALE times as large. Chosen on the development sets of other hands and numbers of MNIST
# training digits at their own size (docs/changelog.md, 2026-12-07 evening): the development fonts read
# 81.8% -> 84.3% of numbers exactly; with 24 or 32 pixels as the threshold, MNIST's digits at their own
# size (20 pixels tall) were read larger too, and 1% fewer of their numbers read exactly.
SMALL_WRITING = 20.0
SMALL_SCALE = 3.0
SMALL_TARGET = 32.0
MAX_MARKS = 2 * MAX_DIGITS

# Two blobs that overlap left to right (a digit in two strokes, a broken line, or two digits close
# together) are read as one where that reading scores MERGE_COST more than the two apart, one of them,
# alone, reads poorly (its class's log-probability plus the digit score's term under WEAK) and the
# shorter stands under PIECE_HEIGHT of the two together (a piece of a digit is shorter than the digit;
# two digits side by side are each about as tall as both). Chosen on numbers composed from the
# validation split's digits and on mouse-drawn numbers of other seeds than the bench's (docs/changelog.md,
# 2026-12-02): the right joins (broken fine-pen digits) won by 5.5 to 22 with a piece at -2.96 or less; the
# wrong ones (close digits) won by up to 6.25, every piece at -0.61 or more in a first draw of drawn
# numbers; in 200 drawn numbers the first two conditions still cost 7 numbers (whole digits joined), the
# third brought them back.
MERGE_COST = 4.0
WEAK = -1.5
PIECE_HEIGHT = 0.8


class NotALine(Exception):
    """More separate marks than a line of digits has."""

    def __init__(self, marks: int):
        super().__init__(
            f"{marks} separate marks: not a line of digits (at most {MAX_DIGITS} digits are read on a line)"
        )
        self.marks = marks


@dataclass
class DigitCrop:
    image: np.ndarray  # (28, 28) uint8, white on black, as the model expects
    box: tuple[int, int, int, int]  # left, top, right, bottom in the (scaled) picture
    probabilities: np.ndarray | None = None  # (10,), when the crop was chosen by recognition
    digit_score: float | None = None  # how much it looks like a digit (src/reading/digit_score.py)
    # cut out of a blob read as several digits: where it ends is the segmentation's guess, not a gap
    cut: bool = False
    # how much better (in the joint score's log units) its blob reads as this many digits than as any
    # other number of digits (inf: no other count was possible; None: not chosen by recognition)
    count_margin: float | None = None


def read_line(
    gray: np.ndarray,
    classify: Classify,
    max_per_blob: int = MAX_PER_BLOB,
    pen_strokes: np.ndarray | None = None,
) -> list[DigitCrop]:
    """Every digit of a picture, left to right, with its probabilities, split where recognition says.

    `classify` takes (N, 28, 28) uint8 crops and gives their (N, 10) probabilities and (N,) digit
    scores (None: the model has no digit score). `pen_strokes` (`stroke_labels`): the pen stroke that
    drew each pixel, where the picture comes with its strokes (the drawing page).
    """
    strokes = ink(gray)
    found = blobs(strokes, pen_strokes)
    if len(found) > MAX_MARKS:
        raise NotALine(len(found))
    scale = 1.0 if pen_strokes is not None else small_writing_scale(found, gray.shape)
    if scale == 1.0:
        return _read_blobs(gray, strokes, found, classify, max_per_blob, pen_strokes)
    larger = larger_picture(gray, scale)
    strokes = ink(larger)
    crops = _read_blobs(larger, strokes, blobs(strokes), classify, max_per_blob, None)
    for crop in crops:  # boxes in the picture as given
        left, top, right, bottom = crop.box
        crop.box = (
            int(left / scale),
            int(top / scale),
            int(np.ceil(right / scale)),
            int(np.ceil(bottom / scale)),
        )
    return crops


def small_writing_scale(found: list[Blob], shape: tuple[int, ...]) -> float:
    """How much larger to read writing whose blobs stand under SMALL_WRITING pixels tall (1: as it is):
    small, two close digits are one blob where the grey between them counts as ink; read larger, they
    come apart (a number written small in a large picture). Never beyond WORK_SIZE's area."""
    tall = float(np.median([blob.mask.shape[0] for blob in found])) if found else 0.0
    if not 0 < tall < SMALL_WRITING:
        return 1.0
    scale = min(SMALL_SCALE, SMALL_TARGET / tall)
    if shape[0] * shape[1] * scale * scale > WORK_SIZE * WORK_SIZE:
        scale = max(1.0, WORK_SIZE / float(np.sqrt(shape[0] * shape[1])))
    return scale


@dataclass(frozen=True)
class Plan:
    """A blob (or two overlapping neighbours as one), where it may be cut, and its pieces."""

    blob: Blob
    edges: list[int]
    pieces: dict[tuple[int, int], Piece]


@dataclass(frozen=True)
class Choice:
    """A blob's best segmentation: its pieces, its joint score and how far ahead its count of digits is
    of any other count's best."""

    pieces: list[Piece]
    value: float
    margin: float


@dataclass(frozen=True, eq=False)
class Recognised:
    """What the classifier said of a picture's pieces, and the shape prior to weigh it with."""

    probabilities: np.ndarray  # (N, 10), float64
    likeness: np.ndarray | None  # (N,) digit scores (None: the model has no digit score)
    means: np.ndarray
    spreads: np.ndarray
    max_per_blob: int

    def best(self, plan: Plan) -> Choice:
        """The plan's best segmentation."""
        split, value, margin = _best_split(
            plan.blob.mask,
            plan.edges,
            plan.pieces,
            self.probabilities,
            self.means,
            self.spreads,
            self.max_per_blob,
            self.likeness,
        )
        return Choice([plan.pieces[key] for key in split], value, margin)


def _read_blobs(
    gray: np.ndarray,
    strokes: np.ndarray,
    found: list[Blob],
    classify: Classify,
    max_per_blob: int,
    pen_strokes: np.ndarray | None,
) -> list[DigitCrop]:
    """`read_line` on the blobs of a picture's strokes."""
    shear = line_shear(strokes)
    if shear is not None:
        strokes = shear.apply(strokes)
        if pen_strokes is not None:
            pen_strokes = shear.apply(pen_strokes, nearest=True)
        found = blobs(strokes, pen_strokes)
    plans, joined, images = _plans(strokes, found)
    if not images:
        return []
    probabilities, likeness = classify(np.stack(images))
    recognised = Recognised(
        np.asarray(probabilities, dtype=np.float64), likeness, *shape_prior(), max_per_blob
    )
    crops = []
    for choice in _choices(found, plans, joined, recognised):
        for piece in choice.pieces:
            digit_score = None if likeness is None else float(likeness[piece.index])
            box = piece.box if shear is None else shear.unshear(piece.box, gray.shape[1])
            probabilities = recognised.probabilities[piece.index]
            cut = len(choice.pieces) > 1
            crops.append(
                DigitCrop(piece.image, box, probabilities, digit_score, cut, count_margin=choice.margin)
            )
    return crops


def _plans(strokes: np.ndarray, found: list[Blob]) -> tuple[list[Plan], dict[int, Plan], list[np.ndarray]]:
    """Per blob, and per two overlapping neighbours as one (k -> the plan of blobs k and k + 1), its cuts
    and pieces; and the pieces' crops, in the order they are numbered."""
    plans = []
    joined = {}
    images: list[np.ndarray] = []
    for k, blob in enumerate(found):
        candidates = [blob]
        if k + 1 < len(found) and _may_join(blob, found[k + 1]):
            candidates.append(_joined(blob, found[k + 1]))
        for candidate in candidates:
            edges, pieces = blob_pieces(strokes, candidate, first=len(images))
            images += [piece.image for piece in pieces.values()]
            if candidate is blob:
                plans.append(Plan(blob, edges, pieces))
            else:
                joined[k] = Plan(candidate, edges, pieces)
    return plans, joined, images


def _choices(
    found: list[Blob], plans: list[Plan], joined: dict[int, Plan], recognised: Recognised
) -> list[Choice]:
    """The line's readings, left to right: each blob's best segmentation, two overlapping blobs read as
    one where that reads clearly better."""
    chosen = [recognised.best(plan) for plan in plans]
    choices, k = [], 0
    while k < len(chosen):
        choice = chosen[k]
        if k in joined:
            together = _together(found[k : k + 2], (chosen[k], chosen[k + 1]), joined[k], recognised)
            if together is not None:
                choice, k = together, k + 1
        choices.append(choice)
        k += 1
    return choices


def _together(
    pair: list[Blob], apart: tuple[Choice, Choice], plan: Plan, recognised: Recognised
) -> Choice | None:
    """Two overlapping blobs as one (None: they read better apart). One digit in two strokes (a 4, a 5)
    or broken (a lifted pen, a faint fine line), or two digits? The better reading decides; apart, each
    blob stands as a piece of both would, short of their height at a cost."""
    together = recognised.best(plan)
    tall = plan.blob.mask.shape[0]
    value = apart[0].value + apart[1].value
    value -= sum(SHORT_COST * max(0.0, SHORT - b.mask.shape[0] / tall) / SHORT for b in pair)
    pieces = (*apart[0].pieces, *apart[1].pieces)
    weakest = min(reads_alone(recognised.probabilities, recognised.likeness, p.index) for p in pieces)
    if together.value > value + MERGE_COST and weakest < WEAK:
        return Choice(
            together.pieces, together.value, min(together.margin, together.value - value - MERGE_COST)
        )
    return None


def _may_join(a: Blob, b: Blob) -> bool:
    """Two neighbouring blobs that could be one digit: they overlap left to right and the shorter stands
    under PIECE_HEIGHT of the two together (whether they are is for recognition to say)."""
    top, bottom = min(a.box[1], b.box[1]), max(a.box[3], b.box[3])
    shorter = min(a.box[3] - a.box[1], b.box[3] - b.box[1])
    return min(a.box[2], b.box[2]) > max(a.box[0], b.box[0]) and shorter < PIECE_HEIGHT * (bottom - top)


def _joined(a: Blob, b: Blob) -> Blob:
    """Two neighbouring blobs as one."""
    left, top = min(a.box[0], b.box[0]), min(a.box[1], b.box[1])
    right, bottom = max(a.box[2], b.box[2]), max(a.box[3], b.box[3])
    mask = np.zeros((bottom - top, right - left), bool)
    for blob in (a, b):
        mask[blob.box[1] - top : blob.box[3] - top, blob.box[0] - left : blob.box[2] - left] |= blob.mask
    return Blob((left, top, right, bottom), mask)


def digit_crops(gray: np.ndarray) -> list[DigitCrop]:
    """Every blob of a grayscale picture as the model sees it, left to right, without recognition
    (touching digits stay one crop; `read_line` splits them)."""
    strokes = ink(gray)
    crops = []
    for blob in blobs(strokes):
        left, top, right, bottom = blob.box
        crops.append(
            DigitCrop(mnist_style(np.where(blob.mask, strokes[top:bottom, left:right], 0)), blob.box)
        )
    return crops
