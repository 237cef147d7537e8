"""A registered classifier, loaded once, reading pictures: what src.predict, the drawing page and the
bench read with. Its digit score comes from the model's metadata (fitted at training), or from its run,
fitted there by its first reader (training.digit_score.when=read: src/training/digit_score.py)."""

from __future__ import annotations

import logging
import time

import numpy as np

from src.reading.reader import SURE, ModelReader

log = logging.getLogger("src.predict")


class Classifier(ModelReader):
    """A classifier (`load_classifier`) loaded once, reading pictures."""

    def __init__(self, uri: str, tracking_uri: str | None = None, sure: float = SURE):
        from src.reading.digit_score import DigitScore
        from src.tracking import load_reading_classifier
        from src.training.digit_score import fitted_when_read

        start = time.perf_counter()
        model, metadata = load_reading_classifier(uri, tracking_uri)
        digit_score = DigitScore.from_metadata(metadata)
        if digit_score is None:  # a training that left it to its first reader: kept in its run, or fitted now
            digit_score = fitted_when_read(uri, model)
        super().__init__(model, sure, digit_score)
        self.uri = uri
        self.probabilities(np.zeros((1, 28, 28), np.uint8))  # build the predict function once
        log.info("loaded %s in %.1f s", uri, time.perf_counter() - start)
