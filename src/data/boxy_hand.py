"""A hand unlike MNIST's, drawn from stroke shapes with a seed: boxy, wide digits of straight strokes and
square corners (as written into the boxes of a form), slashed zeros, flagged 1s with a foot, barred
Z-like 2s, flat-topped 3s, open 4s, barred 7s; slanted, on paper of any size, in thin to thick pens, dark
on light or the reverse. A model trained on MNIST alone misreads many of them: it is the measuring source
for training on a folder of one's own digits (docs/own-data.md), pictures of one seed to correct the
model with, of another to measure it on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

Stroke = list[tuple[float, float]]

# each digit a few polylines in a 100x200 box (y down): boxy, as on forms with printed boxes, with a
# slashed zero, a flagged 1 with a foot, a barred Z-like 2, a flat-topped 3 and a barred 7
T, M, B, L, R = 12, 100, 188, 12, 88  # top, middle and bottom rows; left and right columns
SHAPES: dict[int, list[Stroke]] = {
    0: [[(L, T), (R, T), (R, B), (L, B), (L, T)], [(R - 8, T + 20), (L + 8, B - 20)]],
    1: [[(L, 100), (58, T), (58, B)], [(25, B), (90, B)]],
    2: [[(L, T), (R, T), (L, B), (R, B)], [(30, M), (70, M)]],
    3: [[(L, T), (R, T), (40, M - 10), (R, M + 20), (R, B), (L, B)]],
    4: [[(L, T), (L, M), (R, M)], [(R - 10, T), (R - 10, B)]],
    5: [[(R, T), (L, T), (L, M), (R, M), (R, B), (L, B)]],
    6: [[(R, T), (L, T), (L, B), (R, B), (R, M), (L, M)]],
    7: [[(L, T + 15), (L, T), (R, T), (45, B)], [(35, M), (90, M)]],
    8: [[(L, T), (R, T), (R, B), (L, B), (L, T)], [(L, M), (R, M)]],
    9: [[(R, M), (L, M), (L, T), (R, T), (R, B), (L, B), (L, B - 30)]],
}


def draw_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One digit of the hand as a grayscale picture (uint8; dark ink on light paper, or the reverse)."""
    from PIL import Image, ImageDraw

    size = int(rng.integers(56, 161))
    height = rng.uniform(0.55, 0.8) * size
    scale, wide = height / 200, rng.uniform(1.1, 1.7)
    slant = rng.uniform(-0.1, 0.35)  # x moves by slant x height above the baseline
    pen = max(1, round(rng.uniform(0.04, 0.16) * height))
    left = (size - scale * (100 * wide + slant * 200)) / 2 + rng.normal(0, size * 0.04)
    top = (size - height) / 2 + rng.normal(0, size * 0.04)
    image = Image.new("L", (size, size), 0)
    pencil = ImageDraw.Draw(image)
    for stroke in SHAPES[digit]:
        points = [
            (
                left + scale * (wide * x + slant * (200 - y)) + scale * rng.normal(0, 2.0),
                top + scale * y + scale * rng.normal(0, 2.0),
            )
            for x, y in stroke
        ]
        pencil.line(points, fill=255, width=pen, joint="curve")
    ink = np.asarray(image, np.float32) * rng.uniform(0.7, 1.0)
    paper = rng.uniform(200, 250) + rng.normal(0, 4, ink.shape)
    picture = np.clip(paper - ink, 0, 255)
    return (255 - picture if rng.random() < 0.2 else picture).astype(np.uint8)


def write_folder(root: str | Path, per_digit: int, seed: int, suffix: str = ".png") -> Path:
    """per_digit pictures of each digit in the data=folder layout (root/0/ ... root/9/); returns root."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for digit in range(10):
        (root / str(digit)).mkdir(parents=True, exist_ok=True)
        for index in range(per_digit):
            Image.fromarray(draw_digit(digit, rng)).save(root / str(digit) / f"{seed}-{index}{suffix}")
    return root
