"""Scores of a trained model on a labelled set: its Evaluation (src/results.py: predictions, loss, confusion
matrix, per-class report)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from src.data import NUM_CLASSES, batches
from src.results import Evaluation

if TYPE_CHECKING:
    import keras

__all__ = ["Evaluation", "evaluate"]


def evaluate(
    model: keras.Model, x: np.ndarray, y: np.ndarray, split: str, batch_size: int = 256
) -> Evaluation:
    probabilities = model.predict(batches(x, batch_size), verbose=0) if len(x) else np.zeros((0, NUM_CLASSES))
    return Evaluation(
        split=split, labels=np.asarray(y), probabilities=np.asarray(probabilities, dtype=np.float32)
    )
