"""Train on generated non-digits too, toward even probabilities (outlier exposure).

A classifier trained only on digits learns only what tells one digit from another: a scribble or a letter
can land near a digit in its features and read as that digit at 0.99, and no score fitted afterwards on
those features can tell them apart (src/reading/digit_score.py). Here the training split gets
`training.non_digits.share` of its size in generated non-digits (scribbles and smudges as
src/data/pictures.py draws them, printed letters in matplotlib's fonts, as src/training/digit_score.py
draws them; two scribbles and two letters for every smudge) labelled NOT_A_DIGIT, whose loss is the
cross-entropy to even probabilities over the ten digits (Hendrycks, Mazeika and Dietterich, "Deep anomaly
detection with outlier exposure", ICLR 2019). The model's output stays 10 probabilities per digit.

The non-digits are cut out the way a reader cuts a crop, which is not how MNIST's own digits were made.
Alone, they taught the model that a crop cut that way is not a digit (two trainings: digits cut out of
numbers read sure 60-68% of the time, against 92%). So training digits (`as_read` of the split's size),
written on paper (`written`: at a random size, wider or narrower, some turned) and cut out again, go in
beside them with their labels. Drawn only at a random size, as the digit score's digits are, they left
wide, slanted and varied numbers read sure much less often than before (validation numbers: wide 41% ->
21%); written so, as often as before. `pairs`: two training digits written touching, cut out as one crop,
go in as non-digits too, so that a pair of joined digits read as one digit is doubted. `fonts`: digits
written in handwriting fonts of other people than MNIST's writers (src/data/training_fonts.py, a training
source the reader is never measured on), cut out as a reader cuts them, go in with their labels.

The crops are cut in another process that starts before TensorFlow is imported (`start`), so on a 2-core
machine they are cut while the command starts up, and kept on disk (src/training/crop_cache.py, under
`training.feature_cache_dir`) by the digits they are cut from, the counts, the seed and the code: the
next start with the same ones loads them instead (cutting them held the first step back by seconds).

The test set plays no part: the digits come from the training split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

NOT_A_DIGIT = 10  # the label of a generated non-digit in the training split


def crops(
    x: np.ndarray, y: np.ndarray, count: int, as_read: int, seed: int, pairs: int = 0, fonts: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """`count` non-digits, `pairs` of the digits `x` written touching, `as_read` of them alone (labels
    `y`) and `fonts` digits written in the training fonts, cut out as a reader cuts them: (N, 28, 28) uint8
    crops and their labels (NOT_A_DIGIT for a non-digit, a pair included)."""
    from src.data.pictures import non_digits
    from src.training.digit_score import printed_letters, reader_crops

    rng = np.random.default_rng([seed, NOT_A_DIGIT])
    found: list[np.ndarray] = []
    if count:
        pictures = non_digits(rng, scribbles=2 * count // 5, smudges=count // 5)
        for kind in ("scribbles", "smudges"):
            found += [crop for gray in pictures[kind] for crop in reader_crops(255.0 - gray)]
        found += printed_letters(rng, count - len(found))
    found += touching_pairs(x, rng, pairs)
    chosen = rng.choice(len(x), min(as_read, len(x)), replace=False)
    digits, labels = [], []
    for index in chosen:  # written, then cut out as a reader cuts them, keeping each label
        cut = reader_crops(255.0 - written(x[index], rng))
        if len(cut):
            digits.append(cut[0])
            labels.append(int(y[index]))
    for image, label in font_digits(rng, fonts):
        digits.append(image)
        labels.append(label)
    images = (
        np.stack([*digits, *found]).astype(np.uint8) if digits or found else np.zeros((0, 28, 28), np.uint8)
    )
    return images, np.array([*labels, *[NOT_A_DIGIT] * len(found)], np.int64)


def touching_pairs(x: np.ndarray, rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Two training digits written touching, cut out as one crop: not a digit. A classifier trained on
    single digits reads a pair of joined digits as one digit, sure (a 68 as an 8), and the reading is
    sure and wrong; trained on pairs as non-digits, it doubts them."""
    from src.data.pictures import compose_number
    from src.training.digit_score import reader_crops

    found: list[np.ndarray] = []
    for _ in range(3 * count if len(x) > 1 else 0):  # two digits overlapping may still not touch
        pair = [x[i] for i in rng.choice(len(x), 2, replace=False)]
        height = int(rng.integers(30, 90))
        cut = reader_crops(255.0 - compose_number(pair, rng, height, gaps=(-0.3, -0.05), stretch=(0.8, 1.3)))
        if len(cut) == 1:
            found.append(cut[0])
            if len(found) == count:
                break
    return found


def font_digits(rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, int]]:
    """`count` digits written in the training fonts installed here, the fonts and digits taken in turn, each
    cut out as a reader cuts a picture of one digit (every blob of it together), with its label. None
    where no training font is installed (`make install` installs them)."""
    from src.data import training_fonts
    from src.reading.one_digit import digit_of

    fonts = sorted(training_fonts.available().values())
    if count and not fonts:
        log.warning("non-digits: no training font is installed (make install installs them): none written")
    found = []
    for k in range(count if fonts else 0):
        digit = k % 10
        found.append((digit_of(training_fonts.font_digit(digit, fonts[(k // 10) % len(fonts)], rng)), digit))
    return found


def written(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A training digit as a hand writes it on paper (gray, 0 ink .. 255 paper): 30 to 90 pixels tall,
    0.8 to 1.6 times as wide as it was, and half of them turned by up to 12 degrees either way."""
    from PIL import Image

    from src.data.pictures import compose_number

    if rng.random() < 0.5:
        digit = np.asarray(
            Image.fromarray(digit).rotate(rng.uniform(-12, 12), Image.Resampling.BILINEAR, expand=True)
        )
    return compose_number([digit], rng, height=int(rng.integers(30, 90)), stretch=(0.8, 1.6))


def _cut(
    x: np.ndarray,
    y: np.ndarray,
    count: int,
    as_read: int,
    seed: int,
    path: Path | None = None,
    pairs: int = 0,
    fonts: int = 0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The crops and the seconds they took, kept at `path` (a crop cache's file) when given."""
    from src.training import crop_cache

    start = time.perf_counter()
    images, labels = crops(x, y, count, as_read, seed, pairs, fonts)
    if path is not None:
        crop_cache.save(path, {"images": images, "labels": labels})
    return images, labels, time.perf_counter() - start


class Pending:
    """Crops being cut (in another process where one could be started, else here when asked for), or
    already cut (`ready`: from the cache)."""

    def __init__(self, future: Future | None, arguments: tuple, ready: tuple | None = None):
        self.future, self.arguments, self.ready = future, arguments, ready

    def result(self) -> tuple[np.ndarray, np.ndarray, float]:
        if self.ready is not None:
            return self.ready
        if self.future is not None:
            try:
                return self.future.result()
            except Exception as e:  # the process died (out of memory, killed): cut them here instead
                log.warning("non-digits: the process cutting them failed (%s); cutting them here", e)
        return _cut(*self.arguments)


def cache_path(
    x: np.ndarray,
    y: np.ndarray,
    count: int,
    seed: int,
    cache_dir: str | Path | None,
    as_read: int,
    pairs: int = 0,
    fonts: int = 0,
) -> Path | None:
    """Where the crops cut from the chosen digits `x` (labels `y`) are kept (None: no cache)."""
    from src.training import crop_cache

    if cache_dir is None:
        return None
    parts = {"digits": crop_cache.array_digest(x, y), "count": count, "as_read": as_read, "seed": seed}
    if pairs:
        parts["pairs"] = pairs
    if fonts:
        parts["fonts"] = fonts
    return crop_cache.path_for(cache_dir, "non_digits", parts)


def start(
    x: np.ndarray,
    y: np.ndarray,
    count: int,
    as_read: int,
    seed: int,
    cache_dir: str | Path | None = None,
    pairs: int = 0,
    fonts: int = 0,
) -> Pending | None:
    """The crops from the cache under `cache_dir` (src/training/crop_cache.py), or start cutting them in
    another process (None: nothing to cut). A fresh interpreter ("spawn"): it imports numpy, Pillow and
    SciPy, never TensorFlow, and keeps what it cut in the cache. Where no process can be started (a
    daemonic worker of a launcher), they are cut in this one when they are needed."""
    from src.training import crop_cache

    if not count and not as_read and not pairs and not fonts:
        return None
    # only the digits that are cut go to the other process (those written alone, and those of the pairs)
    chosen = np.random.default_rng([seed, NOT_A_DIGIT, 1]).choice(
        len(x), min(max(as_read, 4 * pairs), len(x)), replace=False
    )
    as_read = min(as_read, len(chosen))
    path = cache_path(x[chosen], y[chosen], count, seed, cache_dir, as_read, pairs, fonts)
    arguments = (x[chosen], y[chosen], count, as_read, seed, path, pairs, fonts)
    found = crop_cache.load(path) if path is not None else None
    if found is not None:
        log.info("non-digits: %d crops from the cache (%s)", len(found["labels"]), path)
        return Pending(None, arguments, ready=(found["images"], found["labels"], 0.0))
    try:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        future = pool.submit(_cut, *arguments)
        pool.shutdown(wait=False)  # the process ends when the crops are cut
    except (
        AssertionError,
        OSError,
        RuntimeError,
    ) as e:  # "daemonic processes are not allowed to have children"
        log.info("non-digits: cut in this process (%s)", e)
        future = None
    return Pending(future, arguments)


def start_for(training: Any, x: np.ndarray, y: np.ndarray) -> Pending | None:
    """`start` with the counts a training's config asks for (`training.non_digits`, shares of the training
    split `x`), its seed and its cache (`training.feature_cache_dir`). A run logged before the key existed
    (src.rerun) trained without them."""
    shares = training.get("non_digits") or {}
    counts = {key: round(shares.get(key, 0.0) * len(x)) for key in ("share", "as_read", "pairs", "fonts")}
    return start(
        x,
        y,
        counts["share"],
        counts["as_read"],
        training.seed,
        training.feature_cache_dir,  # kept there: the next start with the same digits loads them
        counts["pairs"],
        counts["fonts"],
    )


def loss_and_metric() -> tuple[Callable[[Any, Any], Any], keras.metrics.Metric]:
    """The training loss (a digit: cross-entropy to its label; a non-digit: cross-entropy to even
    probabilities over the ten digits) and accuracy over the digits alone (named `accuracy`, as Keras names
    its own, so the logged metrics keep their names). Both take labels as the split has them (integers,
    NOT_A_DIGIT for a non-digit)."""
    import keras
    from keras import ops

    def digits_or_even(y_true: Any, y_pred: Any) -> Any:  # tensors of the backend's kind
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        digit = labels < NOT_A_DIGIT
        log_p = ops.log(ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0))
        own = ops.take_along_axis(log_p, ops.expand_dims(ops.minimum(labels, 9), -1), axis=-1)[:, 0]
        return -ops.where(digit, own, ops.mean(log_p, axis=-1))

    class DigitAccuracy(keras.metrics.Mean):
        """The share of digits read right; generated non-digits are not counted."""

        def __init__(self, name: str = "accuracy", **kwargs: Any) -> None:
            super().__init__(name=name, **kwargs)

        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
            labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
            right = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), labels), "float32")
            return super().update_state(right, sample_weight=ops.cast(labels < NOT_A_DIGIT, "float32"))

    return digits_or_even, DigitAccuracy()
