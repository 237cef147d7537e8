"""Paper and ink: which pixels are ink, whichever polarity the picture has, how wide its strokes are,
and one digit's strokes normalised the way MNIST was made."""

from __future__ import annotations

import numpy as np

MIN_CONTRAST = 32  # 0-255: less difference between ink and paper counts as no ink
# A border this much of one colour is the paper's, everywhere (`even_border`): a tight scan's digit
# touches its frame on up to a third of it; a photo's shadow spreads its border over far more than
# MIN_CONTRAST.
EVEN_BORDER = 0.6

# Ink is what stands above INK of the strongest stroke, and the fainter ink down to FAINT joined to it
# (hysteresis): a fine pen's hairline between two thick strokes, a pen running dry, belong to the stroke
# they continue, while faint specks and shadows apart from the writing stay paper.
INK = 0.35
FAINT = 0.2

# MNIST's strokes are about 2 to 3 pixels wide in its 20-pixel box; a pen much thinner than that (a fine
# pen in a large picture) is widened to MIN_STROKE before the digit is scaled down.
THIN_STROKE = 1.2
MIN_STROKE = 2.0
FINE_PEN = 2.5  # strokes thinner than this many pixels (in the picture as read) are a fine pen's


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
