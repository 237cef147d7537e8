"""Reading digits written by other hands than MNIST's: UCI's scanned digits, numbers in handwriting fonts
made from people's writing, numbers drawn from stroke shapes in styles MNIST rarely shows."""

from __future__ import annotations

from typing import Any

import numpy as np


def hands(count: int) -> dict[str, list]:
    """The sets, each of written numbers (those with none here left out: no fonts installed)."""
    from src.data.other_hands import available_fonts, font_numbers, uci_numbers, uci_scans
    from src.data.stroke_styles import styled_numbers

    rng = np.random.default_rng(7)
    scans = uci_scans()
    sets = {
        "uci_single": [scans[i] for i in rng.choice(len(scans), min(len(scans), 10 * count), replace=False)],
        "uci_numbers": uci_numbers(rng, count),
        "fonts": font_numbers(rng, 2 * count),
        "held_out_fonts": font_numbers(rng, 2 * count, available_fonts(held_out=True)),
        "styles": styled_numbers(rng, 2 * count),
    }
    return {name: pictures for name, pictures in sets.items() if pictures}


def read_hand(classifier: Any, pictures: list) -> dict[str, int]:
    """One set read: numbers exact, digits right where the count is right, too few digits (merged) or too
    many (split), sure and sure but wrong."""
    from src.reading import segmentation

    tally = dict.fromkeys(("exact", "right", "digits", "merged", "split", "sure", "sure_wrong"), 0)
    for written in pictures:
        gray = segmentation.at_work_size(written.gray)
        reading = classifier.read(segmentation.read_line(gray, classifier.classify))
        truth, read = written.number, reading.number
        tally["exact"] += read == truth
        tally["merged"] += len(read) < len(truth)
        tally["split"] += len(read) > len(truth)
        if len(read) == len(truth):
            tally["right"] += sum(a == b for a, b in zip(read, truth, strict=True))
        tally["digits"] += len(truth)
        tally["sure"] += reading.sure
        tally["sure_wrong"] += reading.sure and read != truth
    return tally


def other_hands(model_uri: str, store: str, count: int) -> dict:
    """Digits written by other hands than MNIST's (src/data/other_hands.py: UCI's scanned digits, and
    numbers in handwriting fonts made from people's writing, numbers drawn from stroke shapes in styles MNIST
    rarely shows: src/data/stroke_styles.py), read as src.predict reads a picture: per
    set, numbers read exactly, digits right where the count is right, numbers read with too few digits
    (merged) or too many (split), and how many read sure and how many of those are wrong."""
    from src.apps.classifier import Classifier
    from src.data.other_hands import available_fonts

    classifier = Classifier(model_uri, store)
    sets = hands(count)
    result: dict[str, Any] = {"other_hands_fonts": len(available_fonts())}
    result["other_hands_held_out_fonts"] = len(available_fonts(held_out=True))
    numbers = dict.fromkeys(("exact", "right", "digits", "sure", "sure_wrong"), 0)
    total = 0
    for name, pictures in sets.items():
        tally, n = read_hand(classifier, pictures), len(pictures)
        result.update(
            {
                f"other_hands_{name}_count": n,
                f"other_hands_{name}_exact": tally["exact"] / n,
                f"other_hands_{name}_digits_right": tally["right"] / tally["digits"],
                f"other_hands_{name}_merged": tally["merged"] / n,
                f"other_hands_{name}_split": tally["split"] / n,
                f"other_hands_{name}_sure": tally["sure"] / n,
                f"other_hands_{name}_sure_wrong": tally["sure_wrong"] / max(tally["sure"], 1),
            }
        )
        if name != "uci_single":  # the numbers' rows: over every set of numbers
            total += n
            for key in numbers:
                numbers[key] += tally[key]
    result["other_hands_numbers_exact"] = numbers["exact"] / max(total, 1)
    result["other_hands_digits_right"] = numbers["right"] / max(numbers["digits"], 1)
    result["other_hands_sure_numbers_wrong"] = numbers["sure_wrong"] / max(numbers["sure"], 1)
    return result
