"""A picture of one digit (a scan, a photo, a crop a page saved) as the model sees it: the reader's own
steps, in the reader's order, so that a model trained on such pictures sees what reading sees.

`src.reading.segmentation` finds the ink (either polarity, the paper by its even border or place by
place), its blobs (specks dropped), straightens a slanted line and normalises a digit the way MNIST was
made (`mnist_style`). A picture of one digit is one piece: every blob of it, together.
"""

from __future__ import annotations

import numpy as np

from src import UserError
from src.reading.segmentation import blobs, decode, ink, line_shear, mnist_style


def digit_picture(data: bytes, name: str = "image") -> np.ndarray:
    """Bytes of a picture holding one digit -> (28, 28) uint8, white on black, as the reader crops it.
    UserError (naming the picture) when it is not a picture, cannot be decoded or holds no ink."""
    return digit_of(decode(data, name), name)


def digit_of(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """A grayscale picture (0 black, 255 white, as `decode` gives it) of one digit -> its crop."""
    strokes = ink(gray)
    shear = line_shear(strokes)
    if shear is not None:
        strokes = shear.apply(strokes)
    found = blobs(strokes)
    if not found:
        raise UserError(f"{name}: no ink (a blank picture, or too little contrast)")
    mask = np.zeros(strokes.shape, bool)
    for blob in found:
        left, top, right, bottom = blob.box
        mask[top:bottom, left:right] |= blob.mask
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    own = np.where(mask, strokes, 0)[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return mnist_style(own)
