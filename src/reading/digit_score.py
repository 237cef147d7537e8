"""How much a crop looks like a digit at all: the doubt that the classifier's probabilities cannot give.

A classifier trained only on digits spreads all of its probability over ten digits, so a scribble or a
letter can come back "3" at 0.95. The digit score is a logistic regression on the classifier's own
features: the backbone's output, flattened, beside the top's penultimate layer (the input of its
softmax layer). It is fitted at the end of training on the training split's digits against generated
non-digits (scribbles, smudges, pieces of digits; see
`src.training.digit_score`). Its threshold keeps a fixed share of the validation split's digits. It is
stored in the registered model's MLflow metadata (`digit_score`), so the classifier's output stays 10
probabilities per digit; a reader that finds it marks a crop below the threshold unsure.

This module travels with the reading model: it imports nothing beyond numpy.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass

import numpy as np

METADATA_KEY = "digit_score"


@dataclass
class DigitScore:
    weights: list[float]  # one per feature (backbone, then penultimate)
    bias: float
    threshold: float  # a score below it: probably not a digit
    kept: float  # the share of validation digits at or above the threshold
    fitted_on: dict  # what it was fitted on: {"digits": n, "non_digits": {kind: n}}

    def score(self, features: np.ndarray) -> np.ndarray:
        """(N, F) features -> (N,) the probability, as the regression sees it, of a digit."""
        z = np.asarray(features, np.float64) @ np.asarray(self.weights) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def to_metadata(self) -> dict:
        """As the model's metadata keeps it: the weights as base64 of little-endian float32 (a
        few thousand numbers would make the MLmodel file long)."""
        found = asdict(self)
        found["weights"] = base64.b64encode(np.asarray(self.weights, "<f4").tobytes()).decode("ascii")
        return found

    @classmethod
    def from_metadata(cls, metadata: dict | None) -> DigitScore | None:
        """The score kept in a model's metadata (None: the model has none, e.g. logged before it existed)."""
        found = (metadata or {}).get(METADATA_KEY)
        if not found:
            return None
        return cls(
            weights=np.frombuffer(base64.b64decode(found["weights"]), "<f4").astype(float).tolist(),
            bias=float(found["bias"]),
            threshold=float(found["threshold"]),
            kept=float(found.get("kept", 0.0)),
            fitted_on=dict(found.get("fitted_on", {})),
        )


def reading_network(model):
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
