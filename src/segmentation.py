"""From a picture of hand-written digits to MNIST-like 28x28 crops, left to right.

One place for the reading pipeline that `src.predict` and `src.draw` share: decode, find the ink
(either polarity), split it into digits (connected strokes, touching digits cut at the thinnest column),
and normalise each digit the way MNIST was made: fit into a 20x20 box keeping its aspect ratio, then
centre its centre of mass in a 28x28 field, white on black.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from src import UserError

MAX_PIXELS = 40_000_000  # larger pictures are refused (PIL's own bomb limit is about 179 million)
WORK_SIZE = 800  # pictures are scaled down to this longest side before segmentation
MIN_CONTRAST = 32  # 0-255: less difference between ink and paper counts as no ink


@dataclass
class DigitCrop:
    image: np.ndarray  # (28, 28) uint8, white on black, as the model expects
    box: tuple[int, int, int, int]  # left, top, right, bottom in the (scaled) picture


def decode(data: bytes, name: str = "image") -> np.ndarray:
    """Bytes of a PNG/JPEG/... to grayscale floats (0 black, 255 white); transparency becomes white."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
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
    scale = WORK_SIZE / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.LANCZOS)
    return np.asarray(image, dtype=np.float32)


def ink(gray: np.ndarray) -> np.ndarray:
    """White-on-black ink intensity (0-255), whichever polarity the picture had.

    The paper is the colour of the border; on bright paper the picture is inverted.
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    paper = float(np.median(border))
    strokes = gray - paper if paper < 128 else paper - gray
    return np.clip(strokes, 0, 255)


def segment(strokes: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom) of the digits, left to right; none when there is no ink."""
    from scipy import ndimage

    if strokes.size == 0 or strokes.max() < MIN_CONTRAST:
        return []
    mask = strokes > 0.35 * strokes.max()
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        area = int((labels[found] == index).sum())
        boxes.append([found[1].start, found[0].start, found[1].stop, found[0].stop, area])
    if not boxes:
        return []
    biggest = max(b[4] for b in boxes)
    tallest = max(b[3] - b[1] for b in boxes)
    boxes = [b for b in boxes if b[4] >= 0.03 * biggest or (b[3] - b[1]) >= 0.3 * tallest]  # specks
    boxes = _merge_stacked(sorted(boxes, key=lambda b: b[0]))
    result = []
    for left, top, right, bottom, _ in boxes:
        result += _split_touching(mask, left, top, right, bottom)
    return result


def _merge_stacked(boxes: list[list[int]]) -> list[list[int]]:
    """Strokes of one digit that do not touch (the bar of a 5, a broken 4) lie over each other."""
    merged: list[list[int]] = []
    for box in boxes:
        if merged:
            last = merged[-1]
            overlap = min(last[2], box[2]) - max(last[0], box[0])
            if overlap > 0.5 * min(last[2] - last[0], box[2] - box[0]):
                merged[-1] = [
                    min(last[0], box[0]), min(last[1], box[1]), max(last[2], box[2]), max(last[3], box[3]),
                    last[4] + box[4],
                ]  # fmt: skip
                continue
        merged.append(list(box))
    return merged


def _split_touching(mask: np.ndarray, left: int, top: int, right: int, bottom: int) -> list[tuple]:
    """A blob much wider than tall is several digits: cut it at the columns with the least ink."""
    width, height = right - left, bottom - top
    parts = round(width / (0.8 * height)) if width > 1.25 * height else 1
    if parts < 2:
        return [(left, top, right, bottom)]
    column_ink = mask[top:bottom, left:right].sum(axis=0)
    cuts = [0]
    for k in range(1, parts):
        ideal = k * width // parts
        window = max(1, width // (3 * parts))
        lo, hi = max(cuts[-1] + 1, ideal - window), min(width - 1, ideal + window)
        cuts.append(lo + int(np.argmin(column_ink[lo:hi])) if hi > lo else ideal)
    cuts.append(width)
    boxes = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        rows = np.flatnonzero(mask[top:bottom, left + a : left + b].any(axis=1))
        if len(rows):
            boxes.append((left + a, top + int(rows[0]), left + b, top + int(rows[-1]) + 1))
    return boxes


def mnist_style(strokes: np.ndarray) -> np.ndarray:
    """One digit's strokes to 28x28 uint8: longest side 20 px, centre of mass at the centre."""
    from PIL import Image
    from scipy import ndimage

    height, width = strokes.shape
    scale = 20.0 / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(strokes.astype(np.float32), mode="F").resize(size, Image.LANCZOS))
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
    """Every digit of a grayscale picture as the model sees it, left to right."""
    strokes = ink(gray)
    return [
        DigitCrop(mnist_style(strokes[top:bottom, left:right]), (left, top, right, bottom))
        for left, top, right, bottom in segment(strokes)
    ]
