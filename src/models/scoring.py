"""Scores of a trained model on a labelled set: predictions, loss, confusion matrix, per-class report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from src.data import NUM_CLASSES, batches

if TYPE_CHECKING:
    import keras


@dataclass
class Evaluation:
    split: str
    labels: np.ndarray
    probabilities: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).mean()) if len(self.labels) else float("nan")

    @property
    def loss(self) -> float:
        """Sparse categorical cross-entropy, clipped as Keras clips it."""
        p = self.probabilities[np.arange(len(self.labels)), self.labels]
        return float(-np.log(np.clip(p, 1e-7, 1.0)).mean()) if len(self.labels) else float("nan")

    def confusion(self) -> np.ndarray:
        """Counts with true classes as rows and predicted classes as columns."""
        from sklearn.metrics import confusion_matrix

        return confusion_matrix(self.labels, self.predictions, labels=range(NUM_CLASSES)).astype(np.int64)

    def per_class(self) -> dict[str, float]:
        """precision_C, recall_C, f1_C for each class C and their macro averages."""
        from sklearn.metrics import precision_recall_fscore_support

        precision, recall, f1, _ = precision_recall_fscore_support(
            self.labels, self.predictions, labels=range(NUM_CLASSES), zero_division=0
        )
        scores = {}
        for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
            scores.update({f"{name}_{c}": float(v) for c, v in enumerate(values)})
            scores[f"{name}_macro"] = float(values.mean())
        return scores


def evaluate(
    model: keras.Model, x: np.ndarray, y: np.ndarray, split: str, batch_size: int = 256
) -> Evaluation:
    probabilities = model.predict(batches(x, batch_size), verbose=0) if len(x) else np.zeros((0, NUM_CLASSES))
    return Evaluation(
        split=split, labels=np.asarray(y), probabilities=np.asarray(probabilities, dtype=np.float32)
    )
