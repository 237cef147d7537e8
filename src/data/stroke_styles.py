"""Numbers drawn from stroke shapes in the styles people write and MNIST rarely shows: open and closed 4s,
1s plain, flagged, or flagged with a foot, 7s with and without a bar, 9s with a straight or a curled tail,
2s plain or looped, round or flat-topped 3s; in a fine or a thick pen, faint grey ink, slanted, joined
as cursive, or small in a large picture. A measuring source for the reader, never trained or tuned on
(src/data/other_hands.py has the others; `src/data/strokes.py` draws the page's benchmark).
"""

from __future__ import annotations

import math

import numpy as np

from src.data.other_hands import Written

Stroke = list[tuple[float, float]]
STYLES = ("as written", "fine pen", "thick pen", "faint", "slanted", "connected", "small")


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 16) -> Stroke:
    """Points on an ellipse from angle `start` to `end` (degrees, 0 at the top, clockwise)."""
    return [
        (cx + rx * math.sin(math.radians(a)), cy - ry * math.cos(math.radians(a)))
        for a in np.linspace(start, end, n)
    ]


# each digit's ways of writing it: a few polylines in a 100x200 box (y down), drawn in order
SHAPES: dict[int, list[list[Stroke]]] = {
    0: [[_arc(50, 100, 42, 92, 0, 360, 24)], [_arc(50, 100, 38, 90, -20, 350, 24)]],
    1: [
        [[(55, 10), (55, 190)]],
        [[(28, 45), (55, 10), (55, 190)]],  # a flag
        [[(28, 45), (55, 10), (55, 190)], [(25, 190), (85, 190)]],  # a flag and a foot
    ],
    2: [
        [[*_arc(50, 55, 38, 45, -80, 110, 10), (12, 190), (92, 190)]],
        # looped: the stroke comes down, turns a small loop at the bottom left, runs along the base
        [
            [
                *_arc(50, 55, 38, 45, -80, 110, 10),
                (20, 175),
                (12, 188),
                (28, 192),
                (30, 170),
                (40, 186),
                (92, 188),
            ]
        ],
    ],
    3: [
        [[*_arc(50, 52, 36, 42, -70, 170, 10), *_arc(50, 142, 40, 48, -10, 230, 12)]],
        [[(14, 12), (86, 12), (45, 85), *_arc(50, 138, 40, 52, -30, 230, 12)]],  # flat-topped
    ],
    4: [
        [[(68, 10), (10, 135), (95, 135)], [(72, 70), (72, 190)]],  # closed
        [[(18, 10), (14, 115), (92, 115)], [(74, 20), (74, 190)]],  # open
    ],
    5: [[[(88, 12), (25, 12), (18, 90), *_arc(50, 135, 38, 55, -60, 220, 12)]]],
    6: [[[(80, 15), (45, 12), (18, 70), (12, 140), *_arc(50, 145, 38, 45, 270, 630, 14)]]],
    7: [
        [[(10, 15), (92, 15), (38, 190)]],
        [[(10, 15), (92, 15), (38, 190)], [(35, 100), (88, 100)]],  # a bar
    ],
    8: [[[(50 + 40 * math.sin(2 * t), 100 - 90 * math.cos(t)) for t in np.linspace(0, 2 * math.pi, 32)]]],
    9: [
        [[*_arc(50, 55, 38, 45, 90, 450, 14), (85, 60), (80, 190)]],  # a straight tail
        [
            [*_arc(50, 55, 38, 45, 90, 450, 14), (86, 70), (78, 165), *_arc(55, 165, 24, 25, 90, 240, 6)]
        ],  # curled
    ],
}


def number_picture(number: str, style: str, rng: np.random.Generator) -> np.ndarray:
    """`number` drawn in one of STYLES, each digit in a way of writing it drawn at random (gray, black ink
    on white)."""
    from PIL import Image, ImageDraw

    small = style == "small"
    height = rng.uniform(14, 22) if small else rng.uniform(60, 140)
    scale = height / 200
    pen = {"fine pen": 1.0, "thick pen": rng.uniform(0.14, 0.2) * height}.get(
        style, rng.uniform(0.05, 0.1) * height
    )
    slant = rng.uniform(0.25, 0.45) if style == "slanted" else rng.uniform(-0.05, 0.15)
    gap = rng.uniform(-0.12, 0.0) if style == "connected" else rng.uniform(0.15, 0.6)
    strokes: list[Stroke] = []
    x = 0.0
    for digit in number:
        shapes = SHAPES[int(digit)]
        shape = shapes[int(rng.integers(len(shapes)))]
        wide = rng.uniform(0.75, 1.1)
        wobble = lambda: rng.normal(0, 2.0)  # noqa: E731 - a hand's small unsteadiness
        drawn = [[(x + wide * px + wobble(), py + wobble()) for px, py in stroke] for stroke in shape]
        # joined as cursive: digits that touch, and a stroke from where the pen left one digit to where
        # it starts the next when the two are at about the same height
        if style == "connected" and strokes and abs(strokes[-1][-1][1] - drawn[0][0][1]) < 60:
            strokes[-1] = [*strokes[-1], drawn[0][0]]
        strokes.extend(drawn)
        x += wide * 100 + gap * 100
    width = x * scale + slant * height
    margin = max(8.0, 0.3 * height)
    size = (int(width + 2 * margin), int(height + 2 * margin))
    if small:  # a number that fills a small part of its picture
        size = (max(size[0] * 5, 400), max(size[1] * 4, 160))
    left = rng.uniform(margin, size[0] - width - margin + 1) if small else margin
    top = rng.uniform(margin, size[1] - height - margin + 1) if small else margin
    picture = Image.new("L", size, 255)
    ink = int(rng.integers(150, 200)) if style == "faint" else int(rng.integers(0, 60))
    pencil = ImageDraw.Draw(picture)
    for stroke in strokes:
        points = [(left + scale * px + slant * scale * (200 - py), top + scale * py) for px, py in stroke]
        pencil.line(points, fill=ink, width=max(1, round(pen)), joint="curve")
    return np.asarray(picture, np.float32)


def styled_numbers(rng: np.random.Generator, count: int) -> list[Written]:
    """Numbers of 3 to 6 digits, the styles taken in turn."""
    found = []
    for k in range(count):
        style = STYLES[k % len(STYLES)]
        number = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(3, 7))))
        found.append(Written(number_picture(number, style, rng), number, "strokes", style))
    return found
