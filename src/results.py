"""What training, evaluation and reading return: plain results that the recorder (src/tracking/recorder.py)
writes to MLflow. The domain computes them without a store; tracking records them without knowing the
domain (neither imports the other for them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Evaluation:
    """A model's probabilities for a split's digits, and what they score."""

    split: str
    labels: np.ndarray
    probabilities: np.ndarray  # (digits, classes)

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def classes(self) -> int:
        return int(self.probabilities.shape[1])

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

        return confusion_matrix(self.labels, self.predictions, labels=range(self.classes)).astype(np.int64)

    def per_class(self) -> dict[str, float]:
        """precision_C, recall_C, f1_C for each class C and their macro averages."""
        from sklearn.metrics import precision_recall_fscore_support

        precision, recall, f1, _ = precision_recall_fscore_support(
            self.labels, self.predictions, labels=range(self.classes), zero_division=0
        )
        scores = {}
        for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
            scores.update({f"{name}_{c}": float(v) for c, v in enumerate(values)})
            scores[f"{name}_macro"] = float(values.mean())
        return scores


@dataclass
class FeatureCache:
    """Where the backbone's features came from: hit, computed, or off with the reason; the seconds it took
    to load or compute them, and of those the test digits' (None: no features)."""

    state: str
    seconds: float | None = None
    test_seconds: float | None = None


@dataclass
class Training:
    """What a fit did: its history (per epoch), seconds, whether its step was compiled with XLA and for
    how many steps; `pruned` says why a search's pruner stopped it (None: it was not)."""

    history: dict[str, list[float]]
    seconds: float
    xla: bool
    steps: int
    pruned: str | None = None


@dataclass
class Data:
    """The data a run used: its name, source, digest, sizes by split, and each split's digits and labels
    (training, validation, test) for the store's record of the dataset."""

    name: str
    source: str
    digest: str
    sizes: dict[str, int]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class Setup:
    """What a run is before it fits or scores anything (besides its config): the model's size in
    parameters, the data, the devices, what fell back, the precision and what chose it, and a fine-tune's
    starting point (its URI and the run that logged it)."""

    model_size: dict[str, int]
    data: Data
    replicas: int
    devices: list[str]
    fallbacks: list[str]
    precision: tuple[str, str]
    init_from: tuple[str, str | None] | None = None


@dataclass
class Calibration:
    """A fitted temperature, the expected calibration errors before and after it (`val_ece_before`,
    `val_ece`, ..., and `temperature`), and the reliability curves by split and label: per bin (mean
    confidence, accuracy, count)."""

    temperature: float
    metrics: dict[str, float]
    curves: dict[str, dict[str, list[tuple]]]


@dataclass
class DigitScoreRecord:
    """A fitted digit score as data: its metrics (thresholds and shares kept), what it was fitted on, the
    score itself as JSON keeps it, and the metadata the classifier carries it in."""

    metrics: dict[str, float]
    fitted_on: dict
    score: dict
    model_metadata: dict


class TrainingSink(Protocol):
    """What hears a training as it goes (the recorder, in a tracked run; nothing in a test)."""

    def first_step(self, seconds: float) -> None:
        """The command's first training step came `seconds` after it started."""

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """An epoch's metrics, learning rate and duration."""
