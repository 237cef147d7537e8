"""Blobs of ink: connected strokes (specks dropped, strokes stacked over each other merged) that hold
one digit or a few touching ones; and the pen strokes of a drawing, where the picture comes with them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.reading.paper_and_ink import FINE_PEN, MIN_CONTRAST, ink_mask, stroke_width
from src.reading.picture import work_size

# A fine pen's (FINE_PEN) faint line, broken into pieces, is bridged where the writing is at least this
# many pens tall (a fine pen in a large picture: 30 and more; small writing in a small pen: 7 to 12)
BRIDGE_HEIGHT = 20


@dataclass
class Blob:
    """Connected strokes (and strokes stacked over them) that hold one digit or a few touching ones."""

    box: tuple[int, int, int, int]  # left, top, right, bottom
    mask: np.ndarray  # (bottom - top, right - left) bool: this blob's own ink in its box


def blobs(strokes: np.ndarray, pen_strokes: np.ndarray | None = None) -> list[Blob]:
    """The blobs of ink, left to right: connected strokes, specks dropped, stacked strokes merged.

    `pen_strokes` (as `stroke_labels` draws them: which pen stroke drew each pixel, 0 none) makes each
    stroke its own blob even where it touches another: a drawing that knows its strokes."""
    if strokes.size == 0 or strokes.max() < MIN_CONTRAST:
        return []
    mask = ink_mask(strokes)
    labels = _labels(mask, pen_strokes)
    result = []
    for left, top, right, bottom, _, indices in _boxes(labels):
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


def _labels(mask: np.ndarray, pen_strokes: np.ndarray | None) -> np.ndarray:
    """The ink labelled by connected stroke (by pen stroke, with `pen_strokes`), a fine pen's broken
    line bridged."""
    from scipy import ndimage

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
    return labels


def _boxes(labels: np.ndarray) -> list[list]:
    """Each blob's [left, top, right, bottom, area, its labels], left to right: specks dropped, strokes
    stacked over each other and fragments merged."""
    from scipy import ndimage

    found = []
    for index, where in enumerate(ndimage.find_objects(labels), start=1):
        area = int((labels[where] == index).sum())
        found.append([where[1].start, where[0].start, where[1].stop, where[0].stop, area, {index}])
    if not found:
        return []
    biggest = max(b[4] for b in found)
    tallest = max(b[3] - b[1] for b in found)
    found = [b for b in found if b[4] >= 0.03 * biggest or (b[3] - b[1]) >= 0.3 * tallest]  # specks
    return _merge_fragments(_merge_stacked(sorted(found, key=lambda b: b[0])))


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
    work = work_size(width, height)
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
