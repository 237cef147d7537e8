"""How much a crop looks like a digit at all: the doubt that the classifier's probabilities cannot give.

A classifier trained only on digits spreads all of its probability over ten digits, so a scribble or a
letter can come back "3" at 0.95. The digit score reads the classifier's own features (the backbone's
output, flattened, beside the top's penultimate layer, the input of its softmax layer) through one
hidden layer of ReLU units (none: a logistic regression, as models logged before it have). It is fitted
at the end of training on the training split's digits against generated non-digits (scribbles, smudges,
printed letters, pieces of digits; see `src.training.digit_score`). Its threshold keeps a fixed share
of the validation split's digits; a piece that the segmentation cut out of a blob read as several digits
must pass a stricter one (`cut_threshold`), as the cut is a guess. It is stored in the registered model's
MLflow metadata (`digit_score`), so the classifier's output stays 10 probabilities per digit; a reader
that finds it marks a crop below the threshold unsure.

This module travels with the reading model: it imports nothing beyond numpy.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

METADATA_KEY = "digit_score"


def _packed(values: np.ndarray | list[float]) -> str:
    return base64.b64encode(np.asarray(values, "<f4").tobytes()).decode("ascii")


def _unpacked(text: str) -> list[float]:
    return np.frombuffer(base64.b64decode(text), "<f4").astype(float).tolist()


@dataclass
class DigitScore:
    weights: list[float]  # the output unit's: one per hidden unit (no hidden layer: one per feature)
    bias: float
    threshold: float  # a score below it: probably not a digit
    kept: float  # the share of validation digits at or above the threshold
    fitted_on: dict  # what it was fitted on: {"digits": n, "non_digits": {kind: n}}
    # the hidden layer, features (F) -> H ReLU units: F x H weights, row by row, and H biases (none: the
    # score is a logistic regression on the features)
    hidden_weights: list[float] | None = None
    hidden_bias: list[float] | None = None
    # the threshold for a piece cut out of a blob read as several digits (None: `threshold`, as models
    # logged before it have): stricter, as a cut is a guess and two pieces of one letter or scribble can
    # each read as a digit
    cut_threshold: float | None = None
    kept_cut: float | None = None  # the share of validation digits at or above it

    @cached_property
    def _layers(self) -> tuple[tuple[np.ndarray, np.ndarray] | None, np.ndarray]:
        """The weights as arrays, made once: (hidden (F, H), hidden biases) or None; the output's."""
        hidden = None
        if self.hidden_bias is not None and self.hidden_weights is not None:
            biases = np.asarray(self.hidden_bias)
            hidden = np.asarray(self.hidden_weights).reshape(-1, len(biases)), biases
        return hidden, np.asarray(self.weights)

    def score(self, features: np.ndarray) -> np.ndarray:
        """(N, F) features -> (N,) the probability, as the score sees it, of a digit."""
        hidden, weights = self._layers
        x = np.asarray(features, np.float64)
        if hidden is not None:
            x = np.maximum(x @ hidden[0] + hidden[1], 0.0)
        z = x @ weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def metrics(self) -> dict[str, float]:
        """Its thresholds and the shares of validation digits they keep, as a run records them."""
        metrics = {"digit_score_threshold": self.threshold, "digit_score_val_kept": self.kept}
        if self.cut_threshold is not None and self.kept_cut is not None:
            metrics["digit_score_cut_threshold"] = self.cut_threshold
            metrics["digit_score_val_kept_cut"] = self.kept_cut
        return metrics

    def to_metadata(self) -> dict:
        """As the model's metadata keeps it: the weights as base64 of little-endian float32 (tens of
        thousands of numbers would make the MLmodel file long)."""
        found = asdict(self)
        for key in ("weights", "hidden_weights", "hidden_bias"):
            if found[key] is None:
                del found[key]
            else:
                found[key] = _packed(found[key])
        for key in ("cut_threshold", "kept_cut"):
            if found[key] is None:
                del found[key]
        return found

    @classmethod
    def from_metadata(cls, metadata: dict | None) -> DigitScore | None:
        """The score kept in a model's metadata (None: the model has none, e.g. logged before it existed)."""
        found = (metadata or {}).get(METADATA_KEY)
        if not found:
            return None
        return cls(
            weights=_unpacked(found["weights"]),
            bias=float(found["bias"]),
            threshold=float(found["threshold"]),
            kept=float(found.get("kept", 0.0)),
            fitted_on=dict(found.get("fitted_on", {})),
            hidden_weights=_unpacked(found["hidden_weights"]) if "hidden_weights" in found else None,
            hidden_bias=_unpacked(found["hidden_bias"]) if "hidden_bias" in found else None,
            cut_threshold=float(found["cut_threshold"]) if "cut_threshold" in found else None,
            kept_cut=float(found["kept_cut"]) if "kept_cut" in found else None,
        )


def reading_network(model: keras.Model) -> keras.Model | None:
    """The classifier as one network with two outputs: its 10 probabilities and the features the digit
    score reads (the same layers and weights: top = softmax layer(penultimate)). None where the model is
    not built as features -> top ending in a Dense layer."""
    import keras

    try:
        features, top = model.get_layer("features"), model.get_layer("top")
    except ValueError:
        return None
    last = top.layers[-1]
    if not isinstance(last, keras.layers.Dense):
        return None
    penultimate = keras.Model(top.inputs, last.input)
    inputs = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    backbone = features(inputs)
    hidden = penultimate(backbone)
    both = keras.layers.Concatenate()([keras.layers.Flatten()(backbone), keras.layers.Flatten()(hidden)])
    return keras.Model(inputs, [last(hidden), both])
