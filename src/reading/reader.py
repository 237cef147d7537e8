"""What a reading of a picture is, and the reader that makes one from a classifier's probabilities.

Shared by `src.predict`, the drawing page and the reading model in the registry (`src.reading.reader_model`),
which carries this module with it: it imports nothing beyond numpy, Pillow, SciPy and
`src.reading.segmentation` and `src.reading.digit_score` (and Keras, for a model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from src.reading.digit_score import DigitScore, reading_network
from src.reading.segmentation import DigitCrop, NotALine, decode, picture_size, read_line, stroke_labels

if TYPE_CHECKING:
    import keras

# A digit is read as sure when the model's (calibrated) probability of it is at least this. 0.98, not 0.9:
# of the numbers composed from validation digits that read sure, 1.6% were wrong at 0.9, 1.1% at 0.95 and
# 0.6% at 0.98 (docs/changelog.md, 2026-12-03).
SURE = 0.98
# A digit is read as sure only where the segmentation is sure of how many digits its blob holds: the best
# reading of the blob beats its best reading as any other number of digits by at least this much (in the
# joint score's log units; src/reading/cuts.py). Chosen on numbers composed from the validation
# split's digits (docs/changelog.md, 2026-12-03): 3 kept all but 0.8% of the sure numbers and made the sure
# ones wrong 0.46% of the time instead of 0.56%.
COUNT_MARGIN = 3.0
# A digit is read as sure only where it is at least this share of the height of the tallest digit in its
# line: a speck or a broken-off tick read as a "1" a seventh as tall as its neighbours is not a digit of
# the number. Chosen on numbers composed from the validation split's digits (docs/changelog.md,
# 2026-12-04): from 0.35 up every reading it made unsure was wrong, and no digit of a number read exactly
# stood under 0.5.
MIN_HEIGHT = 0.35


@dataclass
class DigitReading:
    """One digit of a reading: its class, how sure, where (the box in the picture) and why it may not be."""

    digit: int
    probability: float
    top: list[dict]  # the most likely classes: {digit, probability}
    box: tuple[int, int, int, int]
    sure: bool = True
    # how much the crop looks like a digit at all (src/reading/digit_score.py; None: the model has no score)
    digit_score: float | None = None
    looks_like_digit: bool = True
    # the segmentation is sure how many digits the ink around it holds (False: another count read almost
    # as well, e.g. two touching digits read as one)
    count_clear: bool = True
    # its height over the tallest digit's in its line (1.0 for the tallest, and for a digit read alone)
    height_share: float = 1.0
    # at least MIN_HEIGHT of that (False: much smaller than the rest, e.g. a speck read as "1")
    height_clear: bool = True


@dataclass
class Reading:
    """What a picture reads as: what `src.predict json=true` prints per picture, and the drawing page and
    the reading model answer (`message` says why a reading is unsure, or why there are no digits)."""

    number: str  # the most likely digits, as a plain digit string
    digits: list[DigitReading] = field(default_factory=list)
    message: str = ""
    text: str = ""  # the number with each unsure digit shown as "?": 3?17
    sure: bool = False  # every digit sure


class Reader:
    """Reads pictures with `probabilities`: (N, 28, 28) uint8 white-on-black digits -> (N, 10), and a
    digit score where the model has one (`classify`)."""

    sure: float = SURE
    digit_threshold: float | None = None  # a digit score below it is not read as sure (None: no score)
    cut_threshold: float | None = None  # the same for a piece cut out of a blob (None: digit_threshold)
    count_margin: float = COUNT_MARGIN  # a digit whose blob's count of digits is in doubt is not sure
    min_height: float = MIN_HEIGHT  # nor one much shorter than the tallest digit in its line

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def classify(self, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, 28, 28) crops -> their (N, 10) probabilities and (N,) digit scores (None: no score)."""
        return self.probabilities(digits), None

    def read(self, crops: list[DigitCrop], top: int = 3) -> Reading:
        if not crops:
            return Reading(number="", message="no digits found (no ink)")
        scores: np.ndarray | None
        if all(c.probabilities is not None for c in crops):  # chosen by recognition: already classified
            probabilities = np.stack([c.probabilities for c in crops if c.probabilities is not None])
            found = [c.digit_score for c in crops]
            scores = None if None in found else np.asarray(found, np.float64)
        else:
            probabilities, scores = self.classify(np.stack([c.image for c in crops]))
        heights = np.array([max(crop.box[3] - crop.box[1], 1) for crop in crops], np.float64)
        shares = heights / heights.max()
        digits = []
        for index, (crop, p) in enumerate(zip(crops, probabilities, strict=True)):
            order = np.argsort(p)[::-1][:top]
            score = None if scores is None else float(scores[index])
            looks = score is None or self.digit_threshold is None or score >= self.threshold_for(crop)
            counted = crop.count_margin is None or crop.count_margin >= self.count_margin
            tall = bool(shares[index] >= self.min_height)
            digits.append(
                DigitReading(
                    int(order[0]),
                    float(p[order[0]]),
                    [{"digit": int(k), "probability": float(p[k])} for k in order],
                    crop.box,
                    sure=bool(p[order[0]] >= self.sure and looks and counted and tall),
                    digit_score=score,
                    looks_like_digit=bool(looks),
                    count_clear=bool(counted),
                    height_share=round(float(shares[index]), 3),
                    height_clear=tall,
                )
            )
        doubts = []
        for doubt, flags in (
            ("may not be a digit", [not d.looks_like_digit for d in digits]),
            ("may be more or fewer digits", [not d.count_clear for d in digits]),
            ("much smaller than the rest", [not d.height_clear for d in digits]),
        ):
            which = [str(i) for i, flag in enumerate(flags, start=1) if flag]
            if which:
                doubts.append(f"{doubt}: {'digit' if len(which) == 1 else 'digits'} {', '.join(which)}")
        return Reading(
            number="".join(str(d.digit) for d in digits),
            digits=digits,
            text="".join(str(d.digit) if d.sure else "?" for d in digits),
            sure=all(d.sure for d in digits),
            message="; ".join(doubts),
        )

    def threshold_for(self, crop: DigitCrop) -> float:
        """The digit score a crop needs to read as sure: a piece cut out of a blob the stricter one."""
        assert self.digit_threshold is not None
        if crop.cut and self.cut_threshold is not None:
            return max(self.cut_threshold, self.digit_threshold)
        return self.digit_threshold

    def read_picture(
        self, data: bytes, name: str = "image", top: int = 3, strokes: list | None = None, pen: float = 0.0
    ) -> tuple[Reading, list[DigitCrop]]:
        """A picture's reading. `strokes`: the pen strokes that drew it, where they are known (the drawing
        page: polylines of (x, y) in the picture's pixels, `pen` wide), so that touching strokes are
        still told apart."""
        try:
            gray = decode(data, name)
            labels = stroke_labels(strokes, picture_size(data), pen) if strokes else None
            crops = read_line(gray, self.classify, pen_strokes=labels)
        except NotALine as e:  # an answer, not an error: nothing is read from it
            return Reading(number="", message=str(e)), []
        return self.read(crops, top), crops


class ModelReader(Reader):
    """A reader around a loaded Keras model (anything with `predict_on_batch`), with the model's digit
    score where it has one."""

    def __init__(self, model: keras.Model, sure: float = SURE, digit_score: DigitScore | None = None) -> None:
        self.model = model
        self.sure = sure
        self.digit_score = digit_score
        self.network = reading_network(model) if digit_score is not None else None
        self.digit_threshold = digit_score.threshold if self.network is not None and digit_score else None
        if self.digit_threshold is not None and digit_score is not None:
            self.cut_threshold = digit_score.cut_threshold

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """(N, 28, 28) uint8 white-on-black digits -> (N, 10) probabilities."""
        return np.asarray(self.model.predict_on_batch(digits), dtype=np.float64)

    def classify(self, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.network is None or self.digit_score is None:
            return self.probabilities(digits), None
        probabilities, features = self.network.predict_on_batch(digits[..., None])
        return np.asarray(probabilities, np.float64), self.digit_score.score(np.asarray(features, np.float64))
