"""Fit the digit score (src/reading/digit_score.py) at the end of training.

Digits: a sample of the training split, each drawn at a random size and cut out as a reader cuts it.
Non-digits, generated: random scribbles, gray smudges (src/data/pictures.py: non_digits) and pieces of
training digits cut at the ink minima where the segmentation would offer a cut (a half digit is what a
wrong cut gives). Letters are never generated, so the reading benchmark's letters are a kind of
non-digit the score has not seen. The threshold keeps `keep` of the validation split's digits; the test
set plays no part.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from src.reading.digit_score import DigitScore, reading_network

log = logging.getLogger(__name__)


def reader_crops(strokes: np.ndarray) -> list[np.ndarray]:
    """The 28x28 crops a reader makes of the blobs of white-on-black strokes (no recognition)."""
    from src.reading.segmentation import blobs, mnist_style

    crops = []
    for blob in blobs(strokes):
        left, top, right, bottom = blob.box
        crops.append(mnist_style(np.where(blob.mask, strokes[top:bottom, left:right], 0)))
    return crops


def drawn(digit: np.ndarray, rng: np.random.Generator, height: int | None = None) -> np.ndarray:
    """An MNIST digit drawn on paper (as strokes: 0 paper .. 255 ink) at a random height."""
    from src.data.pictures import compose_number

    return 255.0 - compose_number([digit], rng, height=height or int(rng.integers(30, 90)))


def digits_as_read(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MNIST digits drawn on paper at a random height and cut out again, as a reader sees them."""
    crops = []
    for digit in x:
        found = reader_crops(drawn(digit, rng))
        if found:
            crops.append(found[0])
    return np.stack(crops)


def fragments(x: np.ndarray, rng: np.random.Generator, limit: int) -> list[np.ndarray]:
    """Pieces of digits between two of the cuts the segmentation offers (never the whole digit)."""
    from src.reading import segmentation

    pieces: list[np.ndarray] = []
    for digit in x:
        strokes = drawn(digit, rng, height=60)
        for blob in segmentation.blobs(strokes):
            edges, found = segmentation.blob_pieces(strokes, blob)
            pieces += [piece[0] for key, piece in found.items() if key != (0, len(edges) - 1)]
        if len(pieces) >= limit:
            break
    return pieces[:limit]


def non_digit_crops(x: np.ndarray, rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
    """About `count` generated non-digits as a reader's crops: a quarter scribbles, a quarter smudges,
    half pieces of the digits `x`."""
    from src.data.pictures import non_digits

    pictures = non_digits(rng, scribbles=count // 4, smudges=count // 4)
    found = {
        kind: [crop for gray in pictures[kind] for crop in reader_crops(255.0 - gray)]
        for kind in ("scribbles", "smudges")
    }
    found["pieces of digits"] = fragments(x, rng, count // 2)
    return {kind: np.stack(crops) for kind, crops in found.items() if crops}


def features_of(network, crops: np.ndarray) -> np.ndarray:
    _, features = network.predict(crops[..., None], batch_size=256, verbose=0)
    return np.asarray(features, np.float64)


@dataclass
class Crops:
    """What the digit score is fitted on, cut without the model: training digits, generated non-digits
    by kind, validation digits (for the threshold)."""

    digits: np.ndarray
    non_digits: dict[str, np.ndarray]
    validation: np.ndarray
    seconds: float


def cut_crops(digits, sample: int, seed: int) -> Crops | None:
    """The crops for a digit score of `sample` training digits (None: `sample` is 0)."""
    if not sample:
        return None
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(digits.x_train), min(sample, len(digits.x_train)), replace=False)
    positives = digits_as_read(digits.x_train[chosen], rng)
    negatives = non_digit_crops(digits.x_train[chosen], rng, len(positives))
    validation = digits_as_read(digits.x_val[: max(1, sample // 2)], rng)
    return Crops(positives, negatives, validation, time.perf_counter() - start)


def cut_in_background(digits, sample: int, seed: int) -> Future:
    """`cut_crops` in a thread, started before training: the crops need no model, and a CPU training
    leaves some room for them (measured: a fast_baseline command on full MNIST about 2.5 s shorter than
    cutting them after training, where they took 3-4 s; its epochs run a little slower meanwhile)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="digit-score-crops")
    future = pool.submit(cut_crops, digits, sample, seed)
    pool.shutdown(wait=False)  # the thread ends when the crops are cut
    return future


def fit_digit_score(model, crops: Crops | None, keep: float) -> DigitScore | None:
    """The digit score of a trained classifier (None: no crops, training.digit_score.sample=0, or the
    model is not built as features -> top ending in a Dense layer)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if crops is None:
        log.info("digit score: skipped (training.digit_score.sample=0)")
        return None
    network = reading_network(model)
    if network is None:
        log.info("digit score: skipped (no top)")
        return None
    start = time.perf_counter()
    positives, negatives, validation = crops.digits, crops.non_digits, crops.validation
    # one pass through the network for all of them
    everything = features_of(network, np.concatenate([positives, *negatives.values(), validation]))
    x, validation_features = everything[: -len(validation)], everything[-len(validation) :]
    y = np.r_[np.ones(len(positives)), np.zeros(len(x) - len(positives))]
    scaler = StandardScaler().fit(x)
    regression = LogisticRegression(C=0.1, max_iter=3000).fit(scaler.transform(x), y)
    # the standardisation folded into the weights: w . (x - mean) / scale + b
    weights = regression.coef_[0] / scaler.scale_
    score = DigitScore(
        weights=weights.tolist(),
        bias=float(regression.intercept_[0] - weights @ scaler.mean_),
        threshold=0.0,
        kept=keep,
        fitted_on={"digits": len(positives), "non_digits": {k: len(v) for k, v in negatives.items()}},
    )
    scores = score.score(validation_features)
    score.threshold = float(np.quantile(scores, 1.0 - keep))
    score.kept = float(np.mean(scores >= score.threshold))
    log.info(
        "digit score: fitted on %d digits and %d non-digits in %.1f s (their crops took %.1f s, cut "
        "during training); its threshold keeps %.1f%% of %d validation digits",
        len(positives),
        len(x) - len(positives),
        time.perf_counter() - start,
        crops.seconds,
        100 * score.kept,
        len(validation),
    )
    return score
