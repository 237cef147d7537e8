"""Numbers as mouse strokes, for the drawing page's benchmark: each digit a few polylines in a 100x200
box, drawn at a random size, slant and spacing, with a little wobble. Hand-made shapes, not MNIST's:
a model meets them as a user's mouse gives them."""

from __future__ import annotations

import math

import numpy as np


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 16) -> list:
    """Points on an ellipse from angle `start` to `end` (degrees, 0 at the top, clockwise)."""
    return [
        (cx + rx * math.sin(math.radians(a)), cy - ry * math.cos(math.radians(a)))
        for a in np.linspace(start, end, n)
    ]


DIGITS: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(50, 100, 42, 92, 0, 360, 24)],
    1: [[(30, 40), (55, 10), (55, 190)]],
    2: [[*_arc(50, 55, 38, 45, -80, 110, 10), (12, 190), (92, 190)]],
    3: [[*_arc(50, 52, 36, 42, -70, 170, 10), *_arc(50, 142, 40, 48, -10, 230, 12)]],
    4: [[(68, 10), (10, 135), (95, 135)], [(72, 70), (72, 190)]],
    5: [[(88, 12), (25, 12), (18, 90), *_arc(50, 135, 38, 55, -60, 220, 12)]],
    6: [[(80, 15), (45, 12), (18, 70), (12, 140), *_arc(50, 145, 38, 45, 270, 630, 14)]],
    7: [[(10, 15), (92, 15), (38, 190)]],
    8: [[(50 + 40 * math.sin(2 * t), 100 - 90 * math.cos(t)) for t in np.linspace(0, 2 * math.pi, 32)]],
    9: [[*_arc(50, 55, 38, 45, 90, 450, 14), (85, 60), (80, 190)]],
}


def number_strokes(
    digits: list[int], rng: np.random.Generator, width: float = 840, height: float = 320
) -> list[list[tuple[float, float]]]:
    """The strokes of a number written left to right across a width x height canvas."""
    scale = min(rng.uniform(0.75, 1.1), 0.9 * height / 200, width / (len(digits) * 190 + 40))
    slant = rng.uniform(-0.2, 0.25)  # x moves by slant x height above the baseline
    x = rng.uniform(20, 40)
    top = rng.uniform(0.05, 1) * (height - 200 * scale)
    strokes = []
    for digit in digits:
        size = scale * rng.uniform(0.9, 1.1)
        wide = rng.uniform(0.8, 1.4)  # narrow to wide digits
        for stroke in DIGITS[digit]:
            strokes.append(
                [
                    (
                        x + size * (wide * px + slant * (200 - py)) + rng.normal(0, 2.5),
                        top + size * py + rng.normal(0, 2.5),
                    )
                    for px, py in stroke
                ]
            )
        x += size * (100 * wide + rng.uniform(-10, 50))  # from touching to well apart
    return strokes
