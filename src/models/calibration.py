"""Calibrated probabilities: a temperature fitted on the validation split, folded into the model.

A classifier trained to low loss is over-confident: of the digits it calls 99% sure, fewer than 99% are
right. Temperature scaling (Guo et al. 2017) divides the logits by one number T fitted to minimise the
validation split's log-loss; it changes no prediction, only how sure each one is. With a top that ends
in a softmax Dense layer, dividing that layer's weights and bias by T is the same thing exactly, so the
registered model itself gives calibrated probabilities to every consumer (pyfunc, a served model, an
export) and still outputs 10 probabilities per digit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from src.results import Calibration

if TYPE_CHECKING:
    import keras

    from src.results import Evaluation

log = logging.getLogger(__name__)

BINS = 15


def scale(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): the probabilities a model with its logits divided by T gives."""
    logits = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the log-loss of scale(p, T) on these labels."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels)

    def loss(log_t: float) -> float:
        p = scale(probabilities, float(np.exp(log_t)))[np.arange(len(labels)), labels]
        return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())

    result = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """The gap between confidence and accuracy, averaged over `bins` equal-width confidence bins,
    weighted by how many predictions fall in each."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[tuple]:
    """Per non-empty bin: (mean confidence, accuracy, count)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return [
        (float(confidence[which == b].mean()), float(correct[which == b].mean()), int((which == b).sum()))
        for b in range(bins)
        if (which == b).any()
    ]


def softmax_layer(top: keras.Model) -> keras.layers.Dense | None:
    """The Dense layer with a softmax that ends the top (None: the top ends otherwise)."""
    import keras

    last = top.layers[-1]
    if isinstance(last, keras.layers.Dense) and getattr(last.activation, "__name__", "") == "softmax":
        return last
    return None


def fold(layer: keras.layers.Dense, temperature: float) -> None:
    """Divide a softmax Dense layer's kernel and bias by T: its probabilities become scale(p, T)."""
    layer.kernel.assign(layer.kernel / temperature)
    if layer.use_bias:
        layer.bias.assign(layer.bias / temperature)


def summary(temperature: float, validation: Evaluation, test: Evaluation) -> Calibration:
    """The fitted temperature with the 15-bin expected calibration error of validation and test before
    and after it (`val_ece_before`, `val_ece`, ...) and their reliability curves; the evaluations' are
    the calibrated probabilities."""
    curves = {}
    metrics = {"temperature": temperature}
    for prefix, evaluation in (("val", validation), ("test", test)):
        before = scale(evaluation.probabilities, 1.0 / temperature)
        metrics[f"{prefix}_ece_before"] = expected_calibration_error(before, evaluation.labels)
        metrics[f"{prefix}_ece"] = expected_calibration_error(evaluation.probabilities, evaluation.labels)
        curves[evaluation.split] = {
            "before": reliability(before, evaluation.labels),
            f"after (T={temperature:.2f})": reliability(evaluation.probabilities, evaluation.labels),
        }
    return Calibration(temperature, metrics, curves)
