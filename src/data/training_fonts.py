"""Handwriting fonts the reading model trains on (`training.non_digits.fonts`): a training source, never
measured on. The fonts the reader is measured on are others (src/data/other_hands.py: `HAND_FONTS` and
`HELD_OUT_FONTS`; a test keeps the two apart).

Each font is one person's way of writing the ten digits (Debian's packages, installed by `make install`):
open and closed 4s, 1s with a flag, 7s with a bar, 9s with a straight or a curled tail, in pens from a
fine line to a brush. A digit is written in one of them at a random size, in a pen widened or not, turned,
slanted and stretched, so the model sees these shapes as it sees MNIST's digits: many ways, not one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_TRUETYPE, _OPENTYPE = "/usr/share/fonts/truetype", "/usr/share/fonts/opentype"
_NANUM = ("fonts-nanum-extra", "OFL-1.1")
# name: (Debian package, font file, licence). Left out: fonts whose digits a reader would not read as
# those digits (Kristi's 4 is a flagged 1; Domestic Manners' 1 a z).
TRAINING_FONTS = {
    "nanum-pen": (_NANUM[0], f"{_TRUETYPE}/nanum/NanumPen.ttf", _NANUM[1]),
    "nanum-brush": (_NANUM[0], f"{_TRUETYPE}/nanum/NanumBrush.ttf", _NANUM[1]),
    "nanum-barunpen": (_NANUM[0], f"{_TRUETYPE}/nanum/NanumBarunpenR.ttf", _NANUM[1]),
    "purisa": ("fonts-tlwg-purisa-ttf", f"{_TRUETYPE}/tlwg/Purisa.ttf", "GPL-2+ with font exception"),
    "comic-neue": ("fonts-comic-neue", f"{_OPENTYPE}/comic-neue/ComicNeue-Regular.otf", "OFL-1.1"),
    "tomson-talks": ("fonts-tomsontalks", f"{_TRUETYPE}/tomsontalks/TomsonTalks.ttf", "OFL-1.1"),
    "aoyagi-soseki": ("fonts-aoyagi-soseki", f"{_TRUETYPE}/aoyagi-soseki/aoyagi-soseki.ttf", "public domain"),
    "stay-puft": ("fonts-staypuft", f"{_TRUETYPE}/staypuft/StayPuft.ttf", "LGPL-2+"),
}
PACKAGES = sorted({package for package, _, _ in TRAINING_FONTS.values()})


def available() -> dict[str, str]:
    """The training fonts installed here: name -> font file."""
    return {name: path for name, (_, path, _) in TRAINING_FONTS.items() if Path(path).is_file()}


def font_digit(digit: int, font: str, rng: np.random.Generator) -> np.ndarray:
    """One digit written in a font file (gray, black ink on white): 40 to 90 pixels tall, its pen widened
    by up to a twentieth of its size, turned up to 10 degrees, slanted up to 0.3 either way, 0.8 to 1.3
    times as wide."""
    from PIL import Image, ImageDraw, ImageFont

    from src.data.pictures import sheared

    size = int(rng.integers(40, 91))
    face = ImageFont.truetype(font, size)
    pen = int(rng.integers(0, size // 20 + 1))
    left, top, right, bottom = (int(v) for v in face.getbbox(str(digit), stroke_width=pen))
    margin = size // 3
    picture = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 255)
    ink = int(rng.integers(0, 120))
    ImageDraw.Draw(picture).text(
        (margin - left, margin - top), str(digit), font=face, fill=ink, stroke_width=pen, stroke_fill=ink
    )
    picture = picture.rotate(float(rng.uniform(-10, 10)), Image.Resampling.BILINEAR, fillcolor=255)
    width = max(1, round(picture.width * rng.uniform(0.8, 1.3)))
    picture = picture.resize((width, picture.height), Image.Resampling.BILINEAR)
    return sheared(np.asarray(picture, np.float32), float(rng.uniform(-0.3, 0.3)))
