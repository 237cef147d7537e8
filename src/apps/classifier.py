"""A registered classifier, loaded once, reading pictures: what src.predict, the drawing page and the
bench read with."""

from __future__ import annotations

import logging
import time

import numpy as np

from src.reading.reader import SURE, ModelReader

log = logging.getLogger("src.predict")


class Classifier(ModelReader):
    """A classifier (`load_classifier`) loaded once, reading pictures."""

    def __init__(self, uri: str, tracking_uri: str | None = None, sure: float = SURE):
        from src.tracking import load_reading_classifier

        start = time.perf_counter()
        model, digit_score = load_reading_classifier(uri, tracking_uri)
        super().__init__(model, sure, digit_score)
        self.uri = uri
        self.probabilities(np.zeros((1, 28, 28), np.uint8))  # build the predict function once
        log.info("loaded %s in %.1f s", uri, time.perf_counter() - start)
