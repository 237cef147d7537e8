"""What a reading of a picture is, and the reader that makes one from a classifier's probabilities.

Shared by `src.predict`, the drawing page and the reading model in the registry (`src.reading.reader_model`),
which carries this module with it: it imports nothing beyond numpy, Pillow, SciPy and
`src.reading.segmentation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from src.reading.segmentation import DigitCrop, NotALine, decode, read_line

# A digit is read as sure when the model's (calibrated) probability of it is at least this.
SURE = 0.9


@dataclass
class DigitReading:
    digit: int
    probability: float
    top: list[dict]  # the most likely classes: {digit, probability}
    box: tuple[int, int, int, int]
    sure: bool = True


@dataclass
class Reading:
    number: str  # the most likely digits, as a plain digit string
    digits: list[DigitReading] = field(default_factory=list)
    message: str = ""
    text: str = ""  # the number with each unsure digit shown as "?": 3?17
    sure: bool = False  # every digit sure


class Reader:
    """Reads pictures with `probabilities`: (N, 28, 28) uint8 white-on-black digits -> (N, 10)."""

    sure: float = SURE

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def read(self, crops: list[DigitCrop], top: int = 3) -> Reading:
        if not crops:
            return Reading(number="", message="no digits found (no ink)")
        if all(c.probabilities is not None for c in crops):  # chosen by recognition: already classified
            probabilities = np.stack([c.probabilities for c in crops if c.probabilities is not None])
        else:
            probabilities = self.probabilities(np.stack([c.image for c in crops]))
        digits = []
        for crop, p in zip(crops, probabilities, strict=True):
            order = np.argsort(p)[::-1][:top]
            digits.append(
                DigitReading(
                    int(order[0]),
                    float(p[order[0]]),
                    [{"digit": int(k), "probability": float(p[k])} for k in order],
                    crop.box,
                    sure=bool(p[order[0]] >= self.sure),
                )
            )
        return Reading(
            number="".join(str(d.digit) for d in digits),
            digits=digits,
            text="".join(str(d.digit) if d.sure else "?" for d in digits),
            sure=all(d.sure for d in digits),
        )

    def read_picture(self, data: bytes, name: str = "image", top: int = 3) -> tuple[Reading, list[DigitCrop]]:
        try:
            crops = read_line(decode(data, name), self.probabilities)
        except NotALine as e:  # an answer, not an error: nothing is read from it
            return Reading(number="", message=str(e)), []
        return self.read(crops, top), crops


class ModelReader(Reader):
    """A reader around a loaded Keras model (anything with `predict_on_batch`)."""

    def __init__(self, model, sure: float = SURE):
        self.model = model
        self.sure = sure

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """(N, 28, 28) uint8 white-on-black digits -> (N, 10) probabilities."""
        return np.asarray(self.model.predict_on_batch(digits), dtype=np.float64)
