"""The shape prior: how wide MNIST's digits of each class stand to their height."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

# The shape prior's numbers (computed by `measure_shape_prior`, kept true by a test): a small file that
# travels with the reading model in the registry, where the offline sample does not.
SHAPE_PRIOR = Path(__file__).parent / "shape_prior.json"


@functools.cache
def shape_prior() -> tuple[np.ndarray, np.ndarray]:
    """Per class, the mean and standard deviation of log(width / height) of the ink of MNIST's digits."""
    import json

    prior = json.loads(SHAPE_PRIOR.read_text())
    return np.array(prior["means"]), np.array(prior["spreads"])


def measure_shape_prior() -> dict[str, list[float]]:
    """The shape prior from the offline sample's training digits (MNIST fitted each digit into 20x20
    keeping this ratio). Not part of the reading model's code: it reads the sample from src.data."""
    from src.data import SAMPLE_PATH

    sample = np.load(SAMPLE_PATH)
    ratios = np.array([_log_aspect(image > 64) for image in sample["x_train"]])
    labels = sample["y_train"]
    means = [round(float(ratios[labels == c].mean()), 6) for c in range(10)]
    spreads = [round(max(float(ratios[labels == c].std()), 0.1), 6) for c in range(10)]
    return {"means": means, "spreads": spreads}


def _log_aspect(mask: np.ndarray) -> float:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return 0.0
    return float(np.log((cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)))
