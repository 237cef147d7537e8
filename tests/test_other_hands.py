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


def test_stroke_styles_write_each_style_and_each_way_of_writing_a_digit():
    """Every style draws ink on white paper; the ways of writing a digit differ (a flag, a bar, an open
    4); joined as cursive, a number's digits touch; small, the number fills a small part of its picture."""
    from src.data import stroke_styles
    from src.reading import segmentation

    rng = np.random.default_rng(0)
    assert {len(ways) for d, ways in stroke_styles.SHAPES.items() if d in (1, 2, 4, 7, 9)} >= {2}
    assert len(stroke_styles.SHAPES[1]) == 3  # plain, flagged, flagged with a foot
    for style in stroke_styles.STYLES:
        gray = stroke_styles.number_picture("4071", style, rng)
        ink = gray < 128 if style != "faint" else gray < 230
        assert ink.any() and ink.mean() < 0.4, style
        assert np.median(gray) > 240, style
    blobs = [
        len(segmentation.blobs(segmentation.ink(stroke_styles.number_picture("5823", style, rng))))
        for style in ("connected", "as written")
        for _ in range(10)
    ]
    assert np.mean(blobs[:10]) < 2.5 and np.mean(blobs[10:]) >= 3.5  # joined, then apart
    small = stroke_styles.number_picture("4071", "small", rng)
    rows, cols = np.nonzero(small < 128)
    assert (cols.max() - cols.min()) < 0.5 * small.shape[1]
    found = stroke_styles.styled_numbers(rng, 2 * len(stroke_styles.STYLES))
    assert {w.style for w in found} == set(stroke_styles.STYLES)
    assert all(3 <= len(w.number) <= 6 and w.number.isdigit() for w in found)


def _small_numbers(count: int) -> list[tuple[np.ndarray, str]]:
    """Numbers of four test digits of the offline sample written small and close (14 to 19 pixels tall)
    somewhere in a picture of 400x160."""
    from src.data import SAMPLE_PATH
    from src.data.pictures import compose_number

    sample = np.load(SAMPLE_PATH)
    x, y = sample["x_test"], sample["y_test"]
    rng = np.random.default_rng(0)
    found = []
    for _ in range(count):
        chosen = rng.choice(len(x), 4, replace=False)
        number = compose_number(
            [x[i] for i in chosen], rng, int(rng.integers(14, 20)), (0.0, 0.15), margin=10
        )
        picture = np.full((160, 400), 255.0)
        top, left = int(rng.integers(0, 160 - number.shape[0])), int(rng.integers(0, 400 - number.shape[1]))
        picture[top : top + number.shape[0], left : left + number.shape[1]] = number
        found.append((picture, "".join(str(y[i]) for i in chosen)))
    return found


@pytest.mark.slow
def test_small_close_writing_in_a_large_picture_is_read_larger_and_keeps_its_digits_apart(
    digit_model, monkeypatch
):
    """Written small, two close digits are one blob where the grey between them counts as ink; read
    larger (SMALL_WRITING), they come apart, and the boxes are in the picture as given."""
    from src.apps.classifier import Classifier
    from src.reading import segmentation

    classifier = Classifier(digit_model["model"], digit_model["uri"])
    numbers = _small_numbers(40)

    def counts_right() -> float:
        readings = [segmentation.read_line(gray, classifier.classify) for gray, _ in numbers]
        for crops, (gray, _) in zip(readings, numbers, strict=True):
            for crop in crops:  # each box holds ink of the picture as given
                left, top, right, bottom = crop.box
                assert 0 <= left < right <= gray.shape[1] and 0 <= top < bottom <= gray.shape[0]
                assert (gray[top:bottom, left:right] < 128).any()
        return float(np.mean([len(c) == len(n) for c, (_, n) in zip(readings, numbers, strict=True)]))

    larger = counts_right()
    monkeypatch.setattr(segmentation, "SMALL_WRITING", 0.0)  # read as it is
    assert larger >= 0.95 and larger > counts_right()


@pytest.mark.slow
def test_a_flagged_one_with_a_foot_reads_as_one_and_a_faint_fine_pen_reads(digit_model, monkeypatch):
    from src.apps.classifier import Classifier
    from src.data import stroke_styles
    from src.reading import segmentation

    classifier = Classifier(digit_model["model"], digit_model["uri"])

    def read(gray: np.ndarray) -> str:
        return classifier.read(segmentation.read_line(gray, classifier.classify)).number

    monkeypatch.setitem(stroke_styles.SHAPES, 1, [stroke_styles.SHAPES[1][2]])  # a flag and a foot
    ones = [
        read(stroke_styles.number_picture("1", "as written", np.random.default_rng(k))) for k in range(10)
    ]
    assert ones.count("1") >= 9, ones
    monkeypatch.undo()
    # a fine pen in faint grey ink (about 180 of 255 on white paper)
    numbers = ["4071", "385", "2960", "718", "5243"]
    faint = [
        255.0 - 0.3 * (255.0 - stroke_styles.number_picture(n, "fine pen", np.random.default_rng(k)))
        for k, n in enumerate(numbers)
    ]
    assert all(gray.min() > 170 for gray in faint)
    assert sum(read(gray) == n for gray, n in zip(faint, numbers, strict=True)) >= 4
