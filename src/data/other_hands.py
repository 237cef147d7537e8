"""Digits written by other hands than MNIST's writers: a measuring source for the reader, never trained or
tuned on (the training sources are MNIST and the pictures generated in `src.data.pictures` and
`src.data.strokes`).

- UCI: the 1,797 digits of scikit-learn's `load_digits`, written by 43 people on forms, scanned and
  averaged down to 8x8 (the UCI ML repository's "Optical Recognition of Handwritten Digits", Alpaydin and
  Kaynak 1998; CC BY 4.0). Shown as a low-resolution scan shows them: soft, white on black, the digit
  filling its frame. They also make numbers: several writers' digits side by side, black on white.
- Handwriting fonts, each made from one person's writing (Debian's packages, installed by `make
  install`; `HAND_FONTS` and `HELD_OUT_FONTS` name each with its licence): numbers written in them as
  they come, with the fonts' own joins and spacing, and in a thick or a fine pen, in faint grey ink, small
  in a large picture, or slanted. The held-out fonts are measured only: the reader's failures on the
  others (and on UCI's digits) were looked at while it was developed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

_TRUETYPE, _OPENTYPE = "/usr/share/fonts/truetype", "/usr/share/fonts/opentype"
_DKG, _BWHT = ("fonts-dkg-handwriting", "GPL-3+ or OFL-1.1"), ("fonts-bwht", "OFL-1.1")
# name: (Debian package, font file, licence)
HAND_FONTS = {
    "dkg": (_DKG[0], f"{_TRUETYPE}/fifthhorseman/dkg.ttf", _DKG[1]),
    "dkg-italic": (_DKG[0], f"{_TRUETYPE}/fifthhorseman/dkgIt.ttf", _DKG[1]),
    "bwht-build": (_BWHT[0], f"{_OPENTYPE}/bwht/BecauseWeBuild-Regular.otf", _BWHT[1]),
    "bwht-connect": (_BWHT[0], f"{_OPENTYPE}/bwht/BecauseWeConnect-Regular.otf", _BWHT[1]),
    "bwht-create": (_BWHT[0], f"{_OPENTYPE}/bwht/BecauseWeCreate-Regular.otf", _BWHT[1]),
    "bwht-learn": (_BWHT[0], f"{_OPENTYPE}/bwht/BecauseWeLearn-Regular.otf", _BWHT[1]),
    "bwht-mentor": (_BWHT[0], f"{_OPENTYPE}/bwht/BecauseWeMentor-Regular.otf", _BWHT[1]),
    "bwht-organize": (_BWHT[0], f"{_OPENTYPE}/bwht/BecauseWeOrganize-Regular.otf", _BWHT[1]),
    "breip": ("fonts-breip", f"{_TRUETYPE}/breip/Breip.ttf", "OFL-1.0"),
    "humor-sans": ("fonts-humor-sans", f"{_TRUETYPE}/humor-sans/Humor-Sans.ttf", "OFL-1.1"),
    "ecolier": ("fonts-ecolier-court", f"{_TRUETYPE}/ecolier-court/Ecolier-court.ttf", "OFL-1.1"),
    "dancing-script": (
        "fonts-dancingscript",
        f"{_OPENTYPE}/dancingscript/DancingScript-Regular.otf",
        "OFL-1.1",
    ),
}
# Held out: measured only, never looked at while the reader was developed (the fonts above were, and
# UCI's digits too: their figures flatter the reader; these do not)
HELD_OUT_FONTS = {
    "klee": ("fonts-klee", f"{_TRUETYPE}/klee/KleeOne-Regular.ttf", "OFL-1.1"),
    "rufscript": ("fonts-rufscript", f"{_TRUETYPE}/rufscript/Rufscript010.ttf", "GPL-3+ with font exception"),
    "steve-hand": ("fonts-sjfonts", f"{_TRUETYPE}/sjfonts/SteveHand.ttf", "GPL-2+ with font exception"),
    "delphine": ("fonts-sjfonts", f"{_TRUETYPE}/sjfonts/Delphine.ttf", "GPL-2+ with font exception"),
    "kaushan-script": (
        "fonts-kaushanscript",
        f"{_OPENTYPE}/kaushanscript/KaushanScript-Regular.otf",
        "OFL-1.1",
    ),
    "seto": ("fonts-seto", f"{_TRUETYPE}/seto/setofont.ttf", "OFL-1.1"),
    "yusei-magic": ("fonts-yusei-magic", f"{_TRUETYPE}/yusei-magic/YuseiMagic-Regular.ttf", "OFL-1.1"),
}
FONT_PACKAGES = sorted({package for package, _, _ in (*HAND_FONTS.values(), *HELD_OUT_FONTS.values())})
STYLES = ("as written", "thick pen", "fine pen", "faint", "small", "slanted")


@dataclass
class Written:
    """A picture of a number (gray, 0 black .. 255 white, or the other way for a scan) and what it says."""

    gray: np.ndarray
    number: str
    source: str  # "uci" or the font's name
    style: str


def uci_digits() -> tuple[np.ndarray, np.ndarray]:
    """The UCI digits as 8x8 arrays, 0 (paper) .. 16 (ink), and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def uci_scan(image: np.ndarray, size: int = 32) -> np.ndarray:
    """One 8x8 UCI digit as a low-resolution scan shows it: `size` pixels square, soft (bicubic), white on
    black, filling its frame."""
    from PIL import Image

    pixels = np.clip(image * 16, 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC), np.float32)


def uci_scans(size: int = 32) -> list[Written]:
    images, labels = uci_digits()
    return [
        Written(uci_scan(image, size), str(label), "uci", "scan")
        for image, label in zip(images, labels, strict=True)
    ]


def uci_numbers(rng: np.random.Generator, count: int, height: int = 60) -> list[Written]:
    """Numbers of 3 to 6 UCI digits, each from a picture drawn at random (several writers in one number),
    black on white, spaced or close."""
    from src.data.pictures import compose_number

    images, labels = uci_digits()
    found = []
    for _ in range(count):
        chosen = rng.choice(len(labels), int(rng.integers(3, 7)), replace=False)
        digits = [np.clip(uci_scan(images[i], 28), 0, 255).astype(np.uint8) for i in chosen]
        gray = compose_number(digits, rng, height=height, gaps=(0.05, 0.8))
        found.append(Written(gray, "".join(str(labels[i]) for i in chosen), "uci", "composed"))
    return found


def available_fonts(held_out: bool = False) -> dict[str, str]:
    """The handwriting fonts installed here (`held_out`: those of HELD_OUT_FONTS): name -> font file."""
    fonts = HELD_OUT_FONTS if held_out else HAND_FONTS
    return {name: path for name, (_, path, _) in fonts.items() if Path(path).is_file()}


def written_in_font(number: str, font: str, style: str, rng: np.random.Generator) -> np.ndarray:
    """`number` written in a handwriting font file, in a style of STYLES (gray, black ink on white)."""
    from PIL import Image, ImageDraw, ImageFont

    size = int(rng.integers(18, 26)) if style == "small" else int(rng.integers(48, 96))
    face = ImageFont.truetype(font, size)
    stroke = max(1, size // 40) if style == "thick pen" else 0  # a marker: the font's line, widened
    left, top, right, bottom = (int(v) for v in face.getbbox(number, stroke_width=stroke))
    margin = size // 2
    width, height = right - left + 2 * margin, bottom - top + 2 * margin
    if style == "small":  # a number that fills a small part of its picture
        width, height = max(width * 6, 400), max(height * 4, 160)
    scale = 4 if style == "fine pen" else 1  # a fine pen: written large, scaled down, the line thins
    picture = Image.new("L", (width * scale, height * scale), 255)
    ink = int(rng.integers(150, 200)) if style == "faint" else int(rng.integers(0, 60))
    where = (
        (rng.integers(margin, max(margin + 1, width - (right - left) - margin)), margin)
        if style == "small"
        else (margin, margin)
    )
    if scale > 1:
        face = ImageFont.truetype(font, size * scale)
    ImageDraw.Draw(picture).text(
        (int(where[0]) * scale - left * scale, int(where[1]) * scale - top * scale),
        number,
        font=face,
        fill=ink,
        stroke_width=stroke,
        stroke_fill=ink,
    )
    gray = np.asarray(picture, np.float32)
    if scale > 1:
        gray = np.asarray(
            Image.fromarray(gray, mode="F").resize((width, height), Image.Resampling.BOX), np.float32
        )
    if style == "slanted":
        from src.data.pictures import sheared

        gray = sheared(gray, float(rng.uniform(0.2, 0.35)) * float(rng.choice([-1, 1])))
    return gray


def font_numbers(rng: np.random.Generator, count: int, fonts: dict[str, str] | None = None) -> list[Written]:
    """Numbers of 3 to 6 digits written in the installed handwriting fonts, each in a style of STYLES, the
    fonts and styles taken in turn."""
    fonts = available_fonts() if fonts is None else fonts
    found = []
    names = sorted(fonts)
    for k in range(count if names else 0):
        name, style = names[k % len(names)], STYLES[(k // len(names)) % len(STYLES)]
        number = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(3, 7))))
        found.append(Written(written_in_font(number, fonts[name], style, rng), number, name, style))
    return found
