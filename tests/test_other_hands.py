"""Other hands than MNIST's: the measuring source of src/data/other_hands.py (UCI's scanned digits, numbers
in handwriting fonts), and the reader on them."""

import numpy as np
import pytest

from src.data import other_hands


def test_every_handwriting_font_is_installed_and_writes_every_style():
    """`make install` installs the fonts' Debian packages; each writes a number with ink on paper."""
    fonts = {**other_hands.available_fonts(), **other_hands.available_fonts(held_out=True)}
    every = {**other_hands.HAND_FONTS, **other_hands.HELD_OUT_FONTS}
    assert sorted(fonts) == sorted(every), "missing fonts: make install (make system)"
    rng = np.random.default_rng(0)
    for name, path in fonts.items():
        for style in other_hands.STYLES:
            gray = other_hands.written_in_font("4071", path, style, rng)
            ink = gray < 128 if style != "faint" else gray < 230
            assert ink.any() and ink.mean() < 0.4, (name, style)
            assert np.median(gray) > 240  # paper
    small = other_hands.written_in_font("4071", fonts["dkg"], "small", rng)
    rows, cols = np.nonzero(small < 128)
    assert (cols.max() - cols.min()) < 0.5 * small.shape[1]  # a small part of its picture


def test_font_numbers_take_the_fonts_and_styles_in_turn():
    rng = np.random.default_rng(1)
    found = other_hands.font_numbers(rng, 2 * len(other_hands.HAND_FONTS))
    assert {w.source for w in found} == set(other_hands.HAND_FONTS)
    assert {w.style for w in found} == set(other_hands.STYLES[:2])
    assert all(3 <= len(w.number) <= 6 and w.number.isdigit() for w in found)


def test_uci_digits_are_scans_of_other_writers():
    scans = other_hands.uci_scans()
    assert len(scans) == 1797 and {w.number for w in scans} == {str(d) for d in range(10)}
    assert scans[0].gray.shape == (32, 32) and scans[0].gray.max() > 200 and scans[0].gray[0, 0] == 0
    numbers = other_hands.uci_numbers(np.random.default_rng(0), 5)
    assert all(3 <= len(w.number) <= 6 for w in numbers)
    assert all(np.median(w.gray) > 240 for w in numbers)  # black ink on white paper


@pytest.mark.slow
def test_the_reader_reads_uci_scans_as_single_digits(digit_model):
    """Soft low-resolution scans filling their frame read as one digit each, mostly right (the
    recommended model trained on the offline sample; full MNIST's is measured in make bench)."""
    from src.apps.classifier import Classifier
    from src.reading import segmentation

    classifier = Classifier(digit_model["model"], digit_model["uri"])
    scans = other_hands.uci_scans()[:400]
    readings = [classifier.read(segmentation.read_line(w.gray, classifier.classify)) for w in scans]
    assert np.mean([len(r.number) == 1 for r in readings]) >= 0.97
    assert np.mean([r.number == w.number for r, w in zip(readings, scans, strict=True)]) >= 0.85


def test_make_install_installs_the_fonts_packages():
    from tests.conftest import ROOT

    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    line = next(x for x in text.splitlines() if x.startswith("HAND_FONTS :="))
    assert sorted(line.split(":=")[1].split()) == other_hands.FONT_PACKAGES
