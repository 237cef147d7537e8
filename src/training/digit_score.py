"""Fit the digit score (src/reading/digit_score.py) at the end of training.

Digits: a sample of the training split, each drawn at a random size and cut out as a reader cuts it.
Non-digits, generated: random scribbles, gray smudges (src/data/pictures.py: non_digits), printed letters
in matplotlib's fonts (none of the letters digits are written like; the reading benchmark's letters are
drawn in another font, Pillow's default, which the score never sees) and pieces of training digits cut
at the ink minima where the segmentation would offer a cut (a half digit is what a wrong cut gives).
The score is a small network (one hidden layer of ReLU units, sklearn's MLPClassifier) on the
classifier's features. The threshold keeps `keep` of the validation split's digits, and the stricter one
for pieces the segmentation cuts out of a blob `keep_cut` of them; the test set plays no part.
"""

from __future__ import annotations

import functools
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from src.reading.digit_score import METADATA_KEY, DigitScore, reading_network
from src.results import DigitScoreRecord

if TYPE_CHECKING:
    from pathlib import Path

    import keras
    from omegaconf import DictConfig

    from src.data import Digits

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
            pieces += [piece.image for key, piece in found.items() if key != (0, len(edges) - 1)]
        if len(pieces) >= limit:
            break
    return pieces[:limit]


# Letters that digits are written like (O and o as 0, I, l, i and j as 1, Z and z as 2, S and s as 5, b and
# G as 6, B as 8, q and g as 9): never generated as non-digits, as a reader should read them as digits.
LIKE_DIGITS = "OoIlijZzSsbGBqg"
# Pillow's own default font draws the reading benchmark's letters (src/data/pictures.py: non_digits); the
# score is fitted on letters in the fonts that come with matplotlib, so the benchmark's font stays unseen.
FONT_KINDS = ("DejaVuSans", "DejaVuSerif", "STIXGeneral", "cm")


def letter_fonts() -> list[str]:
    """The text fonts that come with matplotlib (found without importing it): DejaVu Sans, Sans Mono and
    Serif, STIX and Computer Modern, upright, bold and slanted."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        return []
    folder = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf"
    skip = ("Display", "cmex", "cmsy")  # not letters (symbols), or the same letters again
    return sorted(
        str(f)
        for f in folder.glob("*.ttf")
        if f.name.startswith(FONT_KINDS) and not any(k in f.name for k in skip)
    )


def printed_letters(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """`count` letters (none of LIKE_DIGITS) as a reader's crops: each in one of `letter_fonts`, at a
    random size and pen width, upright or slanted."""
    import string

    from PIL import Image, ImageDraw, ImageFont

    fonts = letter_fonts()
    letters = [c for c in string.ascii_letters if c not in LIKE_DIGITS]
    crops: list[np.ndarray] = []
    while fonts and len(crops) < count:
        font = ImageFont.truetype(fonts[rng.integers(len(fonts))], int(rng.integers(40, 130)))
        image = Image.new("L", (200, 200), 0)
        pen = int(rng.integers(0, 4))
        ImageDraw.Draw(image).text(
            (30, 10),
            letters[rng.integers(len(letters))],
            fill=255,
            font=font,
            stroke_width=pen,
            stroke_fill=255,
        )
        if rng.random() < 0.5:
            shear = (1, rng.uniform(-0.3, 0.3), 0, 0, 1, 0)
            image = image.transform(image.size, Image.Transform.AFFINE, shear, Image.Resampling.BILINEAR)
        found = reader_crops(np.asarray(image, np.float32))
        if found:  # its largest piece: the letter, whatever specks a slant left beside it
            crops.append(max(found, key=lambda crop: float(crop.sum())))
    return crops


def non_digit_crops(x: np.ndarray, rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
    """About `count` generated non-digits as a reader's crops: a quarter scribbles, an eighth smudges, a
    quarter printed letters, the rest pieces of the digits `x`."""
    from src.data.pictures import non_digits

    pictures = non_digits(rng, scribbles=count // 4, smudges=count // 8)
    found = {
        kind: [crop for gray in pictures[kind] for crop in reader_crops(255.0 - gray)]
        for kind in ("scribbles", "smudges")
    }
    found["printed letters"] = printed_letters(rng, count // 4)
    found["pieces of digits"] = fragments(x, rng, count - sum(len(v) for v in found.values()))
    return {kind: np.stack(crops) for kind, crops in found.items() if crops}


def features_of(network: keras.Model, crops: np.ndarray) -> np.ndarray:
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


def cut_crops(digits: Digits, sample: int, seed: int, cache_dir: str | Path | None = None) -> Crops | None:
    """The crops for a digit score of `sample` training digits (None: `sample` is 0), from the crop cache
    under `cache_dir` (src/training/crop_cache.py) when it has them, else cut now (and kept there)."""
    from src.training import crop_cache

    if not sample:
        return None
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(digits.x_train), min(sample, len(digits.x_train)), replace=False)
    validating = digits.x_val[: max(1, sample // 2)]

    def cut() -> dict[str, np.ndarray]:
        positives = digits_as_read(digits.x_train[chosen], rng)
        negatives = non_digit_crops(digits.x_train[chosen], rng, len(positives))
        validation = digits_as_read(validating, rng)
        return {"digits": positives, "validation": validation, **{NON + k: v for k, v in negatives.items()}}

    parts = {"digits": crop_cache.array_digest(digits.x_train[chosen], validating), "seed": seed}
    found, _ = crop_cache.cached(cache_dir, "digit_score", parts, cut)
    negatives = {k[len(NON) :]: v for k, v in found.items() if k.startswith(NON)}
    return Crops(found["digits"], negatives, found["validation"], time.perf_counter() - start)


NON = "non_digits: "  # the crop cache's name of a kind of non-digit


def cut_in_background(
    digits: Digits, sample: int, seed: int, cache_dir: str | Path | None = None
) -> Future[Crops | None]:
    """`cut_crops` in a thread, started before training: the crops need no model, and a CPU training
    leaves some room for them (measured: a fast_baseline command on full MNIST about 2.5 s shorter than
    cutting them after training, where they took 3-4 s; its epochs run a little slower meanwhile)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="digit-score-crops")
    future = pool.submit(cut_crops, digits, sample, seed, cache_dir)
    pool.shutdown(wait=False)  # the thread ends when the crops are cut
    return future


def _fit_on_features(
    x: np.ndarray, y: np.ndarray, keep: float, hidden: int, seed: int, fitted_on: dict
) -> DigitScore:
    """The score fitted on the features `x` (`y`: 1 for a digit), its standardisation folded into its
    weights; its threshold still to set."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    scaler = StandardScaler().fit(x)
    # the fit's small matrix products run in one BLAS thread: OpenBLAS's threads spin while they wait, so
    # two trainings ending at once on 2 cores (two shells, submitit's local executor) made each fit 5 to 10
    # times slower, 24-52 s against 5 s alone for fast_baseline's 4,000 crops; 6.7-9.7 s with one thread.
    # Alone, one thread is as fast and gives the same score (5.1 s against 5.5 s). joblib's workers
    # already run with one BLAS thread.
    if hidden:
        with warnings.catch_warnings():  # a few hundred passes are enough to rank; no need to converge
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            mlp = MLPClassifier((hidden,), alpha=0.01, max_iter=300, random_state=seed)
            # in float32: 1.2-1.3 s against 1.9-2.0 s in float64 for fast_baseline's 4,000 crops (Intel
            # Xeon, 2026-12-03). Rounding can end the fit at another pass (one seed's threshold moved from
            # 0.0024 to 0.0034); three models read the bench's 2,100 numbers the same but one (changelog)
            with threadpool_limits(limits=1, user_api="blas"):  # one BLAS thread (above)
                mlp.fit(scaler.transform(x).astype(np.float32), y)
        (first, last), (first_bias, last_bias) = mlp.coefs_, mlp.intercepts_
        # the standardisation folded into the hidden layer: ((x - mean) / scale) W + b
        first = first / scaler.scale_[:, None]
        score = DigitScore(
            weights=last[:, 0].tolist(),
            bias=float(last_bias[0]),
            threshold=0.0,
            kept=keep,
            fitted_on={**fitted_on, "hidden_units": hidden},
            hidden_weights=first.ravel().tolist(),
            hidden_bias=(first_bias - scaler.mean_ @ first).tolist(),
        )
    else:
        with threadpool_limits(limits=1, user_api="blas"):  # one BLAS thread (above)
            regression = LogisticRegression(C=0.1, max_iter=3000).fit(scaler.transform(x), y)
        # the standardisation folded into the weights: w . (x - mean) / scale + b
        weights = regression.coef_[0] / scaler.scale_
        score = DigitScore(
            weights=weights.tolist(),
            bias=float(regression.intercept_[0] - weights @ scaler.mean_),
            threshold=0.0,
            kept=keep,
            fitted_on=fitted_on,
        )
    return score


def fit_digit_score(
    model: keras.Model,
    crops: Crops | None,
    keep: float,
    hidden: int = 32,
    seed: int = 0,
    keep_cut: float | None = None,
) -> DigitScore | None:
    """The digit score of a trained classifier (None: no crops, training.digit_score.sample=0, or the
    model is not built as features -> top ending in a Dense layer): `hidden` ReLU units between the
    features and the score (0: a logistic regression). `keep_cut`: the share of validation digits the
    threshold for cut pieces keeps (None: no separate threshold)."""
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
    featured = time.perf_counter()
    x, validation_features = everything[: -len(validation)], everything[-len(validation) :]
    y = np.r_[np.ones(len(positives)), np.zeros(len(x) - len(positives))]
    fitted_on = {"digits": len(positives), "non_digits": {k: len(v) for k, v in negatives.items()}}
    score = _fit_on_features(x, y, keep, hidden, seed, fitted_on)
    scores = score.score(validation_features)
    score.threshold = float(np.quantile(scores, 1.0 - keep))
    score.kept = float(np.mean(scores >= score.threshold))
    if keep_cut is not None:
        score.cut_threshold = max(score.threshold, float(np.quantile(scores, 1.0 - keep_cut)))
        score.kept_cut = float(np.mean(scores >= score.cut_threshold))
    log.info(
        "digit score: fitted on %d digits and %d non-digits in %.1f s (%.1f s of it their features; their "
        "crops took %.1f s, cut during training); its threshold keeps %.1f%% of %d validation digits (for a "
        "cut piece: %s)",
        len(positives),
        len(x) - len(positives),
        time.perf_counter() - start,
        featured - start,
        crops.seconds,
        100 * score.kept,
        len(validation),
        "-" if score.kept_cut is None else f"{100 * score.kept_cut:.1f}%",
    )
    return score


# The digit score fitted when a reader first needs it (training.digit_score.when=read): kept in the
# classifier's run under digit_score/<version>.json, so each classifier version pays for it once.
ARTIFACTS = "digit_score"


@functools.cache
def score_version() -> str:
    """The version of the code that decides a digit score: its crops (src/training/crop_cache.py's
    digest), its fit and how it scores. Another version fits the score again; the one kept stays."""
    import hashlib
    from pathlib import Path

    from src.training import crop_cache

    h = hashlib.sha256(crop_cache.code_digest().encode())
    h.update((Path(__file__).parents[1] / "reading" / "digit_score.py").read_bytes())
    return h.hexdigest()[:12]


def deferred(cfg: DictConfig | None) -> bool:
    """Whether a run of `cfg` left its digit score to its first reader (runs logged before the key
    existed fitted theirs at training, or none)."""
    settings = cfg.training.get("digit_score") if cfg is not None else None
    return bool(settings and settings.get("sample") and settings.get("when", "training") == "read")


def fitted_when_read(uri: str, model: keras.Model) -> DigitScore | None:
    """The digit score of the classifier at `uri` that its training left to its first reader: the one
    kept in its run for this code's version, else fitted now, exactly as the training would have (the
    run's data, seed and settings; the crops from the crop cache when it has them), and kept in the run,
    with the reading model around it registered (src/tracking/registry.py: register_reader). None: the
    model fitted its score at training (it is in its metadata) or has none."""
    import json

    from src.tracking import records

    run_id = records.run_of_model(uri)
    cfg = records.run_config(run_id) if run_id else None
    if run_id is None or cfg is None or not deferred(cfg):
        return None
    name = f"{ARTIFACTS}/{score_version()}.json"
    kept = records.run_text(run_id, name)  # none: not fitted yet for this version of the code
    if kept is not None:
        log.info("digit score: kept in run %s (%s)", run_id, name)
        return DigitScore.from_metadata({METADATA_KEY: json.loads(kept)})
    from src import UserError
    from src.reading.folder import load_data

    start = time.perf_counter()
    settings = cfg.training.digit_score
    try:
        digits = load_data(cfg.data, strict=True)
    except UserError as e:  # its data is not here: read without the score rather than not at all
        log.warning("digit score: not fitted for %s, its training data is not here (%s)", uri, e)
        return None
    crops = cut_crops(digits, settings.sample, cfg.training.seed, cfg.training.get("feature_cache_dir"))
    score = fit_digit_score(
        model, crops, settings.keep, settings.hidden, cfg.training.seed, keep_cut=settings.get("keep_cut")
    )
    if score is None:
        return None
    log.info("digit score: fitted for %s on its first read in %.1f s", uri, time.perf_counter() - start)
    from src.tracking import registry, scores  # MLflow is loaded: the classifier came from it

    scores.keep_digit_score(run_id, record(score), name)
    reader, registered = cfg.tracking.get("reader_model"), cfg.tracking.get("registered_model")
    if reader and registered:
        from src.reading.reader_model import log_reader

        # the reading model's flavour logs it; the registry registers what it logged
        registry.register_reader(
            functools.partial(log_reader, model, digit_score=score), run_id, registered, reader
        )
    return score


def record(score: DigitScore) -> DigitScoreRecord:
    """The score as a run records it (src/results.py), and as the classifier's metadata keeps it."""
    kept = score.to_metadata()
    return DigitScoreRecord(score.metrics(), score.fitted_on, kept, {METADATA_KEY: kept})
