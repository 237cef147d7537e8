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
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src import UserError

MAX_PIXELS = 40_000_000  # larger pictures are refused (PIL's own bomb limit is about 179 million)
WORK_SIZE = 800  # pictures are scaled down to this longest side before segmentation
MIN_CONTRAST = 32  # 0-255: less difference between ink and paper counts as no ink
# A border this much of one colour is the paper's, everywhere (`even_border`): a tight scan's digit
# touches its frame on up to a third of it; a photo's shadow spreads its border over far more than
# MIN_CONTRAST.
EVEN_BORDER = 0.6


# A line holds up to MAX_DIGITS digits; a picture with more than MAX_MARKS separate marks (after the
# strokes of one digit are put together) is not a line of digits: scattered dots, text, a texture.
MAX_DIGITS = 20
# Writing whose blobs stand under SMALL_WRITING pixels tall (their median) is read as tall as that, at
# most SMALL_SCALE times as large. Chosen on the development sets of other hands (docs/changelog.md,
# 2026-12-07): with fast_baseline (seeds 1 and 2) the development fonts read 81.0% / 82.8% -> 83.0% /
# 85.8% of numbers exactly, numbers with too few digits 11.3% / 10.3% -> 8.5% / 7.3%; the composed MNIST
# sets, taller, are not touched.
SMALL_WRITING = 32.0
SMALL_SCALE = 3.0
MAX_MARKS = 2 * MAX_DIGITS


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


# Segmentation by recognition: a cut costs CUT_COST, plus CROSSING_COST for each stroke it crosses beyond
# the first (two touching digits usually meet in one stroke; a cut through one digit crosses two or
# more). At most MAX_PER_BLOB digits in one blob, CANDIDATES candidate cuts.
CUT_COST = 1.5
CROSSING_COST = 4.0
MAX_PER_BLOB = 3
CANDIDATES = 8
# a piece of a blob shorter than SHORT of the blob's height costs up to SHORT_COST (a fragment)
SHORT = 0.75
SHORT_COST = 6.0
# With a digit score (a model fitted with one): each piece also scores DIGIT_SCORE_WEIGHT x the log of
# how much it looks like a digit, so a half digit or two digits in one piece lose to a clean cut. Chosen
# from 0, 0.5, 1 and 2 on numbers composed from the validation split's digits (docs/changelog.md).
DIGIT_SCORE_WEIGHT = 2.0
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


def decode(data: bytes, name: str = "image") -> np.ndarray:
    """Bytes of a PNG/JPEG/... to grayscale floats (0 black, 255 white); transparency becomes white."""
    from PIL import Image, UnidentifiedImageError

    try:
        image: Image.Image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError):
        raise UserError(f"{name}: not an image (expected PNG, JPEG, GIF, BMP or WebP)") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise UserError(f"{name}: too large ({width}x{height}; at most {MAX_PIXELS // 1_000_000} megapixels)")
    try:
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{name}: cannot be decoded ({e})") from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    image = image.convert("L")
    size = _work_size(*image.size)
    if size:  # scaled in 8 bits: a 40-megapixel photo in a fraction of a second
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32)


def picture_size(data: bytes) -> tuple[int, int]:
    """A picture's (width, height) as stored, from its header (`decode` has checked it is a picture)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _work_size(width: int, height: int) -> tuple[int, int] | None:
    """The size a picture is read at: WORK_SIZE on its longest side (None: it is not larger)."""
    scale = WORK_SIZE / max(width, height)
    if scale >= 1:
        return None
    return max(1, round(width * scale)), max(1, round(height * scale))


def at_work_size(gray: np.ndarray) -> np.ndarray:
    """A grayscale array as `decode` would read it from a file: scaled down to WORK_SIZE."""
    from PIL import Image

    size = _work_size(gray.shape[1], gray.shape[0])
    if size is None:
        return gray
    small = Image.fromarray(np.asarray(gray, np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(small, np.float32), 0, 255)  # LANCZOS overshoots at sharp edges


def ink(gray: np.ndarray) -> np.ndarray:
    """White-on-black ink intensity (0-255), whichever polarity the picture had.

    Where the border is of one colour (a scan, a drawing, a clean picture), that colour is the paper,
    everywhere. Otherwise (a photo: a shadow, a gradient) the paper's brightness is taken place by place
    (`paper`), so a shadow over part of it is not read as ink, and which side is ink is told by
    `dark_ink`. The local estimates assume strokes thin beside the picture: on a small scan whose digit
    fills its frame they took the digit's own body for paper and its gaps for ink.
    """
    flat = even_border(gray)
    if flat is not None:
        strokes = flat - gray if flat >= 128 else gray - flat
        return np.clip(strokes, 0, 255)
    bright = dark_ink(gray)
    strokes = paper(gray, bright) - gray if bright else gray - paper(gray, bright)
    return np.clip(strokes, 0, 255)


def even_border(gray: np.ndarray) -> float | None:
    """The border's colour, where EVEN_BORDER of it lies within MIN_CONTRAST / 2 of its median and the
    rest departs to one side (ink: a digit scanned tight touches its frame); None where it varies more,
    or to both sides (a shadow, a gradient: a photo)."""
    if gray.size == 0:
        return None
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).astype(np.float64)
    median = float(np.median(border))
    off = border - median
    if np.mean(np.abs(off) <= MIN_CONTRAST / 2) < EVEN_BORDER:
        return None
    # what departs from it is ink, all of one side; a gradient departs to both
    darker, lighter = int(np.sum(off < -MIN_CONTRAST / 2)), int(np.sum(off > MIN_CONTRAST / 2))
    return median if min(darker, lighter) <= 0.1 * max(darker + lighter, 1) else None


def dark_ink(gray: np.ndarray) -> bool:
    """Dark ink on light paper (else light on dark): which way the picture departs further from its
    local median (the paper, ink being the smaller part of any large window); where both are close, as
    before photos were read, by the colour of the border."""
    from PIL import Image
    from scipy import ndimage

    border = float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
    if gray.size == 0 or min(gray.shape) < 8:
        return border >= 128
    step = max(1, min(gray.shape) // 48)  # the median over a small copy: a window of about 1/6 of the side
    small = np.asarray(
        Image.fromarray(np.asarray(gray, np.float32), mode="F").resize(
            (max(1, gray.shape[1] // step), max(1, gray.shape[0] // step))
        )
    )
    background = ndimage.median_filter(small, size=9, mode="nearest")
    residual = small - background
    darker, lighter = -float(np.percentile(residual, 0.5)), float(np.percentile(residual, 99.5))
    if abs(darker - lighter) <= 0.2 * max(darker, lighter, 1.0):
        return border >= 128
    return darker > lighter


def paper(gray: np.ndarray, bright: bool) -> np.ndarray:
    """The paper's brightness at every pixel, strokes taken away: a grey closing (opening, for light ink
    on dark paper) over a window a third of the picture's shorter side, wider than any stroke."""
    from scipy import ndimage

    size = max(15, min(gray.shape) // 3)
    close = ndimage.grey_closing if bright else ndimage.grey_opening
    return close(gray, size=(size, size), mode="nearest")


# Ink is what stands above INK of the strongest stroke, and the fainter ink down to FAINT joined to it
# (hysteresis): a fine pen's hairline between two thick strokes, a pen running dry, belong to the stroke
# they continue, while faint specks and shadows apart from the writing stay paper.
INK = 0.35
FAINT = 0.2


def ink_mask(strokes: np.ndarray) -> np.ndarray:
    """Which pixels are ink (bool), from `ink`'s intensities."""
    from scipy import ndimage

    strong = strokes > INK * strokes.max()
    if FAINT >= INK or stroke_width(strong) >= FINE_PEN:  # only a fine pen has hairlines to lose
        return strong
    # over the noise of the paper (a photo's grain), or the faint ink joins its specks to the strokes
    paper = strokes[~strong]
    noise = 1.4826 * float(np.median(np.abs(paper - np.median(paper)))) if paper.size else 0.0
    faint = strokes > max(FAINT * strokes.max(), 6 * noise)
    labels, _ = ndimage.label(faint, structure=np.ones((3, 3)))
    return np.isin(labels, np.unique(labels[strong]))


@dataclass
class Blob:
    """Connected strokes (and strokes stacked over them) that hold one digit or a few touching ones."""

    box: tuple[int, int, int, int]  # left, top, right, bottom
    mask: np.ndarray  # (bottom - top, right - left) bool: this blob's own ink in its box


def blobs(strokes: np.ndarray, pen_strokes: np.ndarray | None = None) -> list[Blob]:
    """The blobs of ink, left to right: connected strokes, specks dropped, stacked strokes merged.

    `pen_strokes` (as `stroke_labels` draws them: which pen stroke drew each pixel, 0 none) makes each
    stroke its own blob even where it touches another: a drawing that knows its strokes."""
    from scipy import ndimage

    if strokes.size == 0 or strokes.max() < MIN_CONTRAST:
        return []
    mask = ink_mask(strokes)
    if pen_strokes is not None:
        labels, count = _ink_by_stroke(mask, pen_strokes)
    else:
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    pen = stroke_width(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    if count > 1 and pen < FINE_PEN and pen_strokes is None and rows[-1] - rows[0] >= BRIDGE_HEIGHT * pen:
        # a fine pen's faint line breaks into pieces at the threshold: bridge gaps of a few pixels, where
        # the pieces are lines (many times longer than wide), not dots, and the writing is tall beside its
        # pen (small writing's digits stand a few pixels apart: bridged, they were read as one)
        lengths = [max(s.stop - s.start for s in where) for where in ndimage.find_objects(labels)]
        if np.percentile(lengths, 75) >= 4 * pen:
            labels, _ = ndimage.label(ndimage.binary_dilation(mask, iterations=2), structure=np.ones((3, 3)))
    found = []
    for index, where in enumerate(ndimage.find_objects(labels), start=1):
        area = int((labels[where] == index).sum())
        found.append([where[1].start, where[0].start, where[1].stop, where[0].stop, area, {index}])
    if not found:
        return []
    biggest = max(b[4] for b in found)
    tallest = max(b[3] - b[1] for b in found)
    found = [b for b in found if b[4] >= 0.03 * biggest or (b[3] - b[1]) >= 0.3 * tallest]  # specks
    found = _merge_fragments(_merge_stacked(sorted(found, key=lambda b: b[0])))
    result = []
    for left, top, right, bottom, _, indices in found:
        result.append(
            Blob(
                (left, top, right, bottom),
                (
                    labels[top:bottom, left:right] == next(iter(indices))
                    if len(indices) == 1
                    else np.isin(labels[top:bottom, left:right], list(indices))
                )
                & mask[top:bottom, left:right],
            )
        )
    return result


def _ink_by_stroke(mask: np.ndarray, pen_strokes: np.ndarray) -> tuple[np.ndarray, int]:
    """The ink labelled by the pen stroke that drew it (1..count, 0 no ink); ink outside every stroke
    (a picture and its strokes a pixel apart) goes to the nearest stroke."""
    from scipy import ndimage

    if pen_strokes.shape != mask.shape:
        raise ValueError(f"pen strokes of {pen_strokes.shape} for a picture of {mask.shape}")
    if not pen_strokes.any():
        return ndimage.label(mask, structure=np.ones((3, 3)))
    _, nearest = ndimage.distance_transform_edt(pen_strokes == 0, return_indices=True)
    labels = np.where(mask, pen_strokes[nearest[0], nearest[1]], 0)
    ids, labels = np.unique(labels, return_inverse=True)  # consecutive: 1..count, 0 stays 0
    labels = labels.reshape(mask.shape)
    return labels, len(ids) - 1


def stroke_labels(strokes: list, size: tuple[int, int], pen: float) -> np.ndarray:
    """Pen strokes (polylines of (x, y) in a picture of `size` = (width, height), drawn `pen` wide) as
    the picture `decode` reads: (height, width) at the working size, each pixel the number of the last
    stroke over it (1, 2, ...; 0 none), as `blobs` takes them."""
    from PIL import Image, ImageDraw

    width, height = size
    work = _work_size(width, height)
    scale = 1.0 if work is None else work[0] / width
    image = Image.new("I", work or (width, height), 0)
    draw = ImageDraw.Draw(image)
    wide = max(1, round((pen + 2) * scale))  # a little wider: the picture's anti-aliased edge too
    for number, points in enumerate(strokes, start=1):
        xy = [(float(x) * scale, float(y) * scale) for x, y in points]
        if len(xy) > 1:
            draw.line(xy, fill=number, width=wide, joint="curve")
        r = wide / 2  # round ends, as a pen's
        for x, y in (xy[0], xy[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=number)
    return np.asarray(image, np.int32)


def segment(strokes: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom) of the blobs, left to right, without recognition (touching
    digits stay one box: `read_line` takes them apart); none when there is no ink."""
    return [blob.box for blob in blobs(strokes)]


def _merge_stacked(boxes: list[list]) -> list[list]:
    """Strokes of one digit that do not touch (the bar of a 5, a broken 4) lie over each other."""
    merged: list[list] = []
    for box in boxes:
        if merged:
            last = merged[-1]
            overlap = min(last[2], box[2]) - max(last[0], box[0])
            if overlap > 0.5 * min(last[2] - last[0], box[2] - box[0]):
                merged[-1] = [
                    min(last[0], box[0]), min(last[1], box[1]), max(last[2], box[2]), max(last[3], box[3]),
                    last[4] + box[4], last[5] | box[5],
                ]  # fmt: skip
                continue
        merged.append(list(box))
    return merged


def _merge_fragments(boxes: list[list]) -> list[list]:
    """A blob much shorter than the line (under half its height: a broken-off stroke, a dot) joins the
    nearest blob when it is close (a gap under a third of the line height)."""
    if len(boxes) < 2:
        return boxes
    heights = [b[3] - b[1] for b in boxes]
    line = float(np.median([h for h in heights if h >= 0.6 * max(heights)]))
    boxes = [list(b) for b in boxes]
    while True:
        small = [i for i, b in enumerate(boxes) if b[3] - b[1] < 0.5 * line and len(boxes) > 1]
        merged = False
        for i in small:
            gaps = [
                (max(boxes[j][0] - boxes[i][2], boxes[i][0] - boxes[j][2], 0), j)
                for j in range(len(boxes))
                if j != i
            ]
            gap, j = min(gaps)
            if gap < line / 3:
                a, b = boxes[j], boxes[i]
                boxes[j] = [
                    min(a[0], b[0]),
                    min(a[1], b[1]),
                    max(a[2], b[2]),
                    max(a[3], b[3]),
                    a[4] + b[4],
                    a[5] | b[5],
                ]
                del boxes[i]
                merged = True
                break
        if not merged:
            return sorted(boxes, key=lambda b: b[0])


def cut_candidates(mask: np.ndarray, limit: int = CANDIDATES) -> list[int]:
    """Columns of a blob where a cut may separate two digits: local minima of the ink per column, away
    from the edges, the `limit` with the least ink, left to right. None for a blob too narrow for two."""
    height, width = mask.shape
    if width < 0.5 * height or width < 6:
        return []
    column = np.convolve(mask.sum(axis=0).astype(float), np.ones(3) / 3, mode="same")
    margin = max(2, int(0.12 * height))
    spacing = max(2, int(0.1 * height))
    minima = [
        x
        for x in range(margin, width - margin)
        if column[x] <= column[max(0, x - spacing) : x + spacing + 1].min() + 1e-9
    ]
    chosen: list[int] = []
    for x in sorted(minima, key=lambda x: column[x]):
        if all(abs(x - c) >= spacing for c in chosen):
            chosen.append(x)
        if len(chosen) == limit:
            break
    return sorted(chosen)


def crossings(mask: np.ndarray, x: int) -> int:
    """How many separate strokes a vertical cut at column x crosses."""
    column = mask[:, x].astype(np.int8)
    return int(column[0] + np.count_nonzero(np.diff(column) == 1))


# The shape prior's numbers (computed by `measure_shape_prior`, kept true by a test): a small file that
# travels with the reading model in the registry, where the offline sample does not.
SHAPE_PRIOR = Path(__file__).parent / "shape_prior.json"


@functools.cache
def shape_prior() -> tuple[np.ndarray, np.ndarray]:
    """Per class, the mean and standard deviation of log(width / height) of the ink of MNIST's digits."""
    import json

    prior = json.loads(SHAPE_PRIOR.read_text())
    return np.array(prior["means"]), np.array(prior["spreads"])


def measure_shape_prior() -> dict[str, list[float]]:
    """The shape prior from the offline sample's training digits (MNIST fitted each digit into 20x20
    keeping this ratio). Not part of the reading model's code: it reads the sample from src.data."""
    from src.data import SAMPLE_PATH

    sample = np.load(SAMPLE_PATH)
    ratios = np.array([_log_aspect(image > 64) for image in sample["x_train"]])
    labels = sample["y_train"]
    means = [round(float(ratios[labels == c].mean()), 6) for c in range(10)]
    spreads = [round(max(float(ratios[labels == c].std()), 0.1), 6) for c in range(10)]
    return {"means": means, "spreads": spreads}


def _log_aspect(mask: np.ndarray) -> float:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return 0.0
    return float(np.log((cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)))


def read_line(
    gray: np.ndarray, classify, max_per_blob: int = MAX_PER_BLOB, pen_strokes: np.ndarray | None = None
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
    scale = min(SMALL_SCALE, SMALL_WRITING / tall)
    if shape[0] * shape[1] * scale * scale > WORK_SIZE * WORK_SIZE:
        scale = max(1.0, WORK_SIZE / float(np.sqrt(shape[0] * shape[1])))
    return scale


def larger_picture(gray: np.ndarray, scale: float) -> np.ndarray:
    """A grayscale picture `scale` times as large (bicubic)."""
    from PIL import Image

    size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))
    larger = Image.fromarray(np.asarray(gray, np.float32), mode="F").resize(size, Image.Resampling.BICUBIC)
    return np.clip(np.asarray(larger, np.float32), 0, 255)  # bicubic overshoots at sharp edges


def _read_blobs(
    gray: np.ndarray,
    strokes: np.ndarray,
    found: list[Blob],
    classify,
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
    plans = []  # per blob, and per two overlapping neighbours as one: the blob, its cuts and pieces
    images: list[np.ndarray] = []
    joined = {}  # k -> the plan of blobs k and k + 1 as one, where they overlap left to right
    for k, blob in enumerate(found):
        candidates = [blob]
        if k + 1 < len(found) and _may_join(blob, found[k + 1]):
            candidates.append(_joined(blob, found[k + 1]))
        for candidate in candidates:
            edges, pieces = blob_pieces(strokes, candidate)
            for key, piece in pieces.items():
                pieces[key] = (len(images), *piece)
                images.append(piece[0])
            if candidate is blob:
                plans.append((blob, edges, pieces))
            else:
                joined[k] = (candidate, edges, pieces)
    if not images:
        return []
    probabilities, likeness = classify(np.stack(images))
    probabilities = np.asarray(probabilities, dtype=np.float64)
    means, spreads = shape_prior()

    def alone(index: int) -> float:  # how well a piece reads as some digit, its shape aside
        like = 0.0 if likeness is None else DIGIT_SCORE_WEIGHT * np.log(max(likeness[index], 1e-6))
        return float(np.log(max(probabilities[index].max(), 1e-12)) + like)

    def best(plan: tuple) -> tuple[list, float, float]:
        blob, edges, pieces = plan
        split, value, margin = _best_split(
            blob.mask, edges, pieces, probabilities, means, spreads, max_per_blob, likeness
        )
        return [pieces[key] for key in split], value, margin

    chosen = [best(plan) for plan in plans]
    crops, k = [], 0
    while k < len(chosen):
        use, _, margin = chosen[k]
        # two overlapping blobs: one digit in two strokes (a 4, a 5) or broken (a lifted pen, a faint
        # fine line), or two digits? The better reading decides; apart, each blob stands as a piece of
        # both would, short of their height at a cost
        if k in joined:
            together, value, together_margin = best(joined[k])
            tall = joined[k][0].mask.shape[0]
            apart = chosen[k][1] + chosen[k + 1][1]
            apart -= sum(
                SHORT_COST * max(0.0, SHORT - b.mask.shape[0] / tall) / SHORT for b in found[k : k + 2]
            )
            weakest = min(alone(piece[0]) for piece in (*chosen[k][0], *chosen[k + 1][0]))
            if value > apart + MERGE_COST and weakest < WEAK:
                use, k = together, k + 1
                margin = min(together_margin, value - apart - MERGE_COST)
        for index, image, box, _, _ in use:
            digit_score = None if likeness is None else float(likeness[index])
            box = box if shear is None else shear.unshear(box, gray.shape[1])
            cut = len(use) > 1
            crops.append(DigitCrop(image, box, probabilities[index], digit_score, cut, count_margin=margin))
        k += 1
    return crops


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


def blob_pieces(strokes: np.ndarray, blob: Blob) -> tuple[list[int], dict[tuple[int, int], tuple]]:
    """A blob's cut positions (its edges included) and every piece between two of them: (i, j) ->
    (crop, box in the picture, log width/height, height as a share of the blob's)."""
    left, top, right, bottom = blob.box
    own = np.where(blob.mask, strokes[top:bottom, left:right], 0)
    edges = [0, *cut_candidates(blob.mask), blob.mask.shape[1]]
    pieces = {}
    for i in range(len(edges) - 1):
        for j in range(i + 1, len(edges)):
            piece = _piece(own, blob.mask, edges[i], edges[j], blob.box)
            if piece is not None:
                pieces[(i, j)] = piece
    return edges, pieces


def _piece(own: np.ndarray, mask: np.ndarray, a: int, b: int, box: tuple) -> tuple | None:
    """The part of a blob between columns a and b as a crop, its box in the picture and its shape."""
    rows = np.flatnonzero(mask[:, a:b].any(axis=1))
    cols = np.flatnonzero(mask[:, a:b].any(axis=0))
    if not len(rows):
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, a + cols[0], a + cols[-1] + 1
    image = mnist_style(own[top:bottom, left:right])
    where = (box[0] + int(left), box[1] + int(top), box[0] + int(right), box[1] + int(bottom))
    return image, where, float(np.log((right - left) / (bottom - top))), (bottom - top) / mask.shape[0]


def _piece_score(p, log_aspect, height, means, spreads, likeness, index) -> float:
    """How well one piece reads as one digit: the log-probability of its most likely class, the shape
    prior of that class, a cost for standing short of its blob (`height` a share of the blob's) and,
    with a digit score, how much it looks like a digit at all."""
    digit = int(np.argmax(p))
    z = (log_aspect - means[digit]) / spreads[digit]
    short = max(0.0, SHORT - height) / SHORT  # digits of one blob stand about as tall as the blob
    like = 0.0 if likeness is None else DIGIT_SCORE_WEIGHT * np.log(max(likeness[index], 1e-6))
    return float(np.log(max(p[digit], 1e-12)) - 0.5 * z * z - SHORT_COST * short + like)


def _best_split(
    mask, edges, pieces, probabilities, means, spreads, max_per_blob, likeness=None
) -> tuple[list[tuple[int, int]], float, float]:
    """The pieces (i, j) of the best segmentation of one blob and its score: a dynamic programme over
    cut positions. Also how much better that score is than the best with any other number of pieces
    (inf: no other number is possible)."""

    def score(i: int, j: int) -> float:
        if (i, j) not in pieces:
            return -np.inf
        index, _, _, log_aspect, height = pieces[(i, j)]
        return _piece_score(probabilities[index], log_aspect, height, means, spreads, likeness, index)

    n = len(edges) - 1
    # what cutting at each edge costs (none at the blob's left edge)
    cost = [0.0] + [CUT_COST + CROSSING_COST * max(0, crossings(mask, x) - 1) for x in edges[1:-1]]
    # best[j][k]: the best score of the blob's columns up to edge j in k pieces, and where it came from
    best: dict[tuple[int, int], tuple[float, int]] = {(0, 0): (0.0, 0)}  # (0, 0) comes from nowhere
    for j in range(1, n + 1):
        for k in range(1, max_per_blob + 1):
            options = []
            for i in range(j):
                if (i, k - 1) not in best:
                    continue
                options.append((best[(i, k - 1)][0] + score(i, j) - cost[i], i))
            if options:
                value, i = max(options)
                if value > -np.inf:
                    best[(j, k)] = (value, i)
    ends = [(best[(n, k)][0], k) for k in range(1, max_per_blob + 1) if (n, k) in best]
    if not ends:
        return ([(0, n)] if (0, n) in pieces else []), -np.inf, np.inf
    value, k = max(ends)
    others = [v for v, count in ends if count != k]
    margin = value - max(others) if others else np.inf
    split, j = [], n
    while k > 0:
        i = best[(j, k)][1]
        split.append((i, j))
        j, k = i, k - 1
    return split[::-1], value, margin


# MNIST's strokes are about 2 to 3 pixels wide in its 20-pixel box; a pen much thinner than that (a fine
# pen in a large picture) is widened to MIN_STROKE before the digit is scaled down.
THIN_STROKE = 1.2
MIN_STROKE = 2.0
FINE_PEN = 2.5  # strokes thinner than this many pixels (in the picture as read) are a fine pen's
# ... where the writing is at least this many pens tall (a fine pen in a large picture: 30 and more; small
# writing in a small pen: 7 to 12)
BRIDGE_HEIGHT = 20


def stroke_width(mask: np.ndarray) -> float:
    """The strokes' mean width in pixels: twice their area over their outline (a stroke of width w and
    length L has area wL and about 2L of outline)."""
    if not mask.any():
        return 0.0
    # changes between neighbours, plus the ink on the picture's four edges (its outline there)
    outline = (
        int(np.count_nonzero(mask[1:] != mask[:-1]))
        + int(np.count_nonzero(mask[:, 1:] != mask[:, :-1]))
        + int(np.count_nonzero(mask[0]) + np.count_nonzero(mask[-1]))
        + int(np.count_nonzero(mask[:, 0]) + np.count_nonzero(mask[:, -1]))
    )
    return 2.0 * float(mask.sum()) / max(outline, 1)


def mnist_style(strokes: np.ndarray) -> np.ndarray:
    """One digit's strokes to 28x28 uint8: longest side 20 px, centre of mass at the centre, strokes
    widened where they would come out much thinner than MNIST's."""
    from PIL import Image
    from scipy import ndimage

    height, width = strokes.shape
    scale = 20.0 / max(height, width)
    pen = stroke_width(strokes > 0)
    if 0 < pen * scale < THIN_STROKE:
        grow = int(np.ceil((MIN_STROKE / scale - pen) / 2))
        strokes = ndimage.grey_dilation(np.pad(strokes, grow), size=(2 * grow + 1, 2 * grow + 1))
        height, width = strokes.shape
        scale = 20.0 / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(
        Image.fromarray(strokes.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    )
    small = np.clip(small, 0, None)
    field = np.zeros((28, 28), np.float32)
    top, left = (28 - size[1]) // 2, (28 - size[0]) // 2
    field[top : top + size[1], left : left + size[0]] = small
    if field.sum() > 0:
        cy, cx = ndimage.center_of_mass(field)
        field = ndimage.shift(field, (14 - cy, 14 - cx), order=1, mode="constant")
    peak = field.max()
    return np.clip(field * (255.0 / peak) if peak > 0 else field, 0, 255).round().astype(np.uint8)


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
