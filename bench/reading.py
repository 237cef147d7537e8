"""Reading: numbers composed from MNIST test digits (spaced, wide, touching, photographed, in a fine pen,
slanted, varied), read as src.predict reads a picture; single digits' doubt; non-digits read as sure;
bad input."""

from __future__ import annotations

import string
import time
from typing import Any

import numpy as np

# the reading benchmark's sets: how many numbers of how many digits, the gaps between digits (a fraction
# of a digit's width; negative: overlapping) and how much wider than MNIST's each digit is drawn
READING_SETS: dict[str, dict[str, Any]] = {
    "spaced": {"digits": 5, "gaps": (0.2, 1.0), "stretch": (1.0, 1.0)},
    "wide": {"digits": 3, "gaps": (0.3, 1.0), "stretch": (1.3, 1.7)},
    "touching": {"digits": 2, "gaps": (-0.1, 0.0), "stretch": (1.0, 1.0)},
    # the spaced kind photographed: uneven light, faint ink, a ruled line, noise (pictures.photo_of_paper)
    "photo": {"digits": 5, "gaps": (0.2, 1.0), "stretch": (1.0, 1.0), "photo": True},
    # the spaced kind written with a fine pen in a large picture (pictures.fine_pen)
    "fine_pen": {"digits": 5, "gaps": (0.2, 1.0), "stretch": (1.0, 1.0), "fine_pen": True},
    # the spaced kind slanted 14 to 24 degrees, either way (pictures.sheared)
    "slanted": {"digits": 5, "gaps": (0.2, 1.0), "stretch": (1.0, 1.0), "slant": (0.25, 0.45)},
    # the spaced kind at random heights, digits turned up to 15 degrees, thick or thin strokes, faint ink
    # (pictures.varied)
    "varied": {"digits": 5, "gaps": (0.2, 1.0), "stretch": (1.0, 1.0), "varied": True},
}
# the photo and fine-pen sets (and those after) draw from their own generators: the sets before them and
# the non-digits stay as they were
OWN_GENERATOR = {"photo": 3, "fine_pen": 4, "slanted": 5, "varied": 6}
DIGITS_RIGHT_SETS = ("spaced", "photo", "fine_pen", "slanted", "varied")


def number_picture(spec: dict[str, Any], digits: list[np.ndarray], draw: np.random.Generator) -> np.ndarray:
    """A picture of one number of the set `spec`, at the size a picture read from its file is."""
    from src.data.pictures import compose_number, fine_pen, photo_of_paper, sheared, varied
    from src.reading import segmentation

    if spec.get("fine_pen"):
        gray = fine_pen(digits, draw)
    elif spec.get("varied"):
        gray = varied(digits, draw)
    else:
        gray = compose_number(digits, draw, gaps=spec["gaps"], stretch=spec["stretch"])
    if spec.get("photo"):
        gray = photo_of_paper(gray, draw)
    if spec.get("slant"):
        gray = sheared(gray, draw.uniform(*spec["slant"]) * draw.choice([-1, 1]))
    return segmentation.at_work_size(gray)


def read_set(
    classifier: Any, spec: dict, draw: np.random.Generator, x: np.ndarray, y: np.ndarray, count: int
) -> dict:
    """`count` numbers of one set read: exact, sure, sure and wrong, digits right, the slowest picture."""
    from src.reading import segmentation

    tally = dict.fromkeys(("exact", "right", "total", "sure", "sure_wrong", "slowest"), 0.0)
    for _ in range(count):
        chosen = draw.choice(len(x), spec["digits"], replace=False)
        gray = number_picture(spec, [x[i] for i in chosen], draw)
        start = time.perf_counter()
        crops = segmentation.read_line(gray, classifier.classify)
        tally["slowest"] = max(tally["slowest"], time.perf_counter() - start)
        read = "".join(str(int(np.argmax(c.probabilities))) for c in crops if c.probabilities is not None)
        truth = "".join(map(str, y[chosen]))
        tally["exact"] += read == truth
        if classifier.read(crops).sure:
            tally["sure"] += 1
            tally["sure_wrong"] += read != truth
        if len(read) == len(truth):
            tally["right"] += sum(a == b for a, b in zip(read, truth, strict=True))
        tally["total"] += len(truth)
    return tally


def composed_numbers(
    classifier: Any, rng: np.random.Generator, x: np.ndarray, y: np.ndarray, count: int
) -> dict:
    """Each set's numbers read: exact numbers, sure ones and how many of those are wrong, digits right."""
    result: dict[str, Any] = {"reading_numbers_per_set": count}
    slowest, sure_numbers, sure_wrong_numbers = 0.0, 0, 0
    for name, spec in READING_SETS.items():
        own = OWN_GENERATOR.get(name)
        tally = read_set(classifier, spec, np.random.default_rng(own) if own else rng, x, y, count)
        exact, read_sure, sure_wrong = int(tally["exact"]), int(tally["sure"]), int(tally["sure_wrong"])
        result[f"reading_{name}_exact"] = exact / count
        result[f"reading_{name}_sure"] = read_sure / count
        result[f"reading_{name}_sure_wrong"] = sure_wrong / max(read_sure, 1)
        sure_numbers, sure_wrong_numbers = sure_numbers + read_sure, sure_wrong_numbers + sure_wrong
        slowest = max(slowest, tally["slowest"])
        if name in DIGITS_RIGHT_SETS:
            result[f"reading_{name}_digits_right"] = int(tally["right"]) / int(tally["total"])
    result["reading_slowest_picture_s"] = slowest
    result["reading_sure_numbers_wrong"] = sure_wrong_numbers / max(sure_numbers, 1)
    return result


def single_digits(classifier: Any, x: np.ndarray, y: np.ndarray) -> dict:
    """Doubt: how often a single test digit reads sure, and how often a sure one is wrong."""
    result = {}
    p, scores = classifier.classify(x[:3000])
    sure = p.max(axis=1) >= classifier.sure
    if scores is not None:  # a digit that the digit score finds unlike a digit is not sure either
        result["reading_digits_unlike_digits"] = float((scores < classifier.digit_threshold).mean())
        sure &= scores >= classifier.digit_threshold
    result["reading_digits_sure"] = float(sure.mean())
    result["reading_sure_digits_wrong"] = float((p.argmax(axis=1)[sure] != y[:3000][sure]).mean())
    return result


def non_digit_pictures(classifier: Any, rng: np.random.Generator) -> dict:
    """How often a picture that is not a digit comes back sure, by kind."""
    from src.data.pictures import non_digits
    from src.reading import segmentation
    from src.training.digit_score import LIKE_DIGITS

    result: dict[str, Any] = {}
    others = non_digits(rng)
    for name, pictures in others.items():
        readings = [classifier.read(segmentation.read_line(g, classifier.classify)) for g in pictures]
        sure = [r.sure and bool(r.digits) for r in readings]
        result[f"reading_{name}_sure"] = float(np.mean(sure))
        if name == "letters":  # apart: the letters no digit is written like, and which letters read sure
            letters = string.ascii_letters
            unlike = [s for letter, s in zip(letters, sure, strict=True) if letter not in LIKE_DIGITS]
            result["reading_letters_unlike_digits_sure"] = float(np.mean(unlike))
            result["reading_letters_read_sure"] = " ".join(
                f"{letter}:{r.number}" for letter, r, s in zip(letters, readings, sure, strict=True) if s
            )
    # the target: scribbles, the letters no digit is written like, smudges. A reader should read an O as 0
    # and an l as 1, and 15 of the 52 letters are such (LIKE_DIGITS): counted in, a reader that reads each
    # of them as its digit and refuses every other letter, scribble and smudge would read 15 / 52 / 3 =
    # 9.6% of the non-digits as sure, above the 5% target (all letters: reading_non_digits_sure_all_letters)
    kinds = {name: result[f"reading_{name}_sure"] for name in others}
    result["reading_non_digits_sure_all_letters"] = float(np.mean(list(kinds.values())))
    kinds["letters"] = result["reading_letters_unlike_digits_sure"]
    result["reading_non_digits_sure"] = float(np.mean(list(kinds.values())))
    return result


def bad_input(classifier: Any, rng: np.random.Generator) -> dict:
    """Each bad picture read from its file as src.predict reads it (an answer or a one-line refusal): how
    long the worst took and what each gave."""
    from src import UserError
    from src.data.pictures import bad_pictures

    times, answers = {}, {}
    for name, data in bad_pictures(rng).items():
        start = time.perf_counter()
        try:
            reading, _ = classifier.read_picture(data, name)
            answers[name] = reading.text or reading.message
        except UserError as e:
            answers[name] = f"refused: {e}"
        times[name] = time.perf_counter() - start
    worst = max(times, key=lambda name: times[name])
    return {
        "reading_bad_input_worst_s": times[worst],
        "reading_bad_input_worst": worst,
        **{f"reading_bad_input: {name}": f"{answers[name]} ({times[name]:.2f} s)" for name in times},
    }


def reading(model_uri: str, store: str, x: np.ndarray, y: np.ndarray, count: int) -> dict:
    """Numbers composed from MNIST test digits (never trained on), read by the model as src.predict
    reads a picture: exact numbers per set, digits right in the spaced set, how many numbers read sure and
    how many of those are wrong, the slowest picture; single digits' doubt, non-digits, bad input."""
    from src.apps.classifier import Classifier

    classifier = Classifier(model_uri, store)
    rng = np.random.default_rng(0)
    result = composed_numbers(classifier, rng, x, y, count)
    result.update(single_digits(classifier, x, y))
    result.update(non_digit_pictures(classifier, rng))
    result.update(bad_input(classifier, rng))
    return result
