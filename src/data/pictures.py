"""Numbers composed from MNIST digits, for the reading tests and benchmark: digits of one height side
by side, with gaps from overlapping to wide, optionally stretched wide, black on white paper."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing import Any


def compose_number(
    digits: list[np.ndarray],
    rng: np.random.Generator,
    height: int = 60,
    gaps: tuple[float, float] = (0.2, 1.0),
    stretch: tuple[float, float] = (1.0, 1.0),
    margin: int = 20,
) -> np.ndarray:
    """MNIST digits (28x28, white on black) as one picture (gray, 0 black ink .. 255 white paper).

    Each digit's ink is scaled to `height` pixels, widened by a factor drawn from `stretch`, and placed
    after the previous one with a gap drawn from `gaps` (a fraction of the previous digit's width;
    negative: they overlap).
    """
    from PIL import Image

    pieces = []
    for digit in digits:
        rows, cols = np.flatnonzero(digit.max(axis=1) > 30), np.flatnonzero(digit.max(axis=0) > 30)
        ink = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)
        scale = height / ink.shape[0]
        width = max(1, round(ink.shape[1] * scale * rng.uniform(*stretch)))
        pieces.append(
            np.asarray(Image.fromarray(ink, mode="F").resize((width, height), Image.Resampling.BILINEAR))
        )
    positions, x = [], margin
    for i, piece in enumerate(pieces):
        positions.append(x)
        if i + 1 < len(pieces):
            x += piece.shape[1] + round(rng.uniform(*gaps) * piece.shape[1])
            x = max(x, positions[-1] + 1)
    width = max(p + piece.shape[1] for p, piece in zip(positions, pieces, strict=True)) + margin
    canvas = np.zeros((height + 2 * margin, width), np.float32)
    for x, piece in zip(positions, pieces, strict=True):
        region = canvas[margin : margin + height, x : x + piece.shape[1]]
        np.maximum(region, piece, out=region)
    return 255.0 - np.clip(canvas, 0, 255)


def non_digits(rng: np.random.Generator, scribbles: int = 200, smudges: int = 100) -> dict[str, list]:
    """Pictures that are not digits (gray, 0 ink .. 255 paper), to measure that a reading of them is not
    sure: random scribbles (4 to 8 points joined by a thick stroke), the 52 Latin letters in the default
    font, smudges (1 to 3 gray ellipses)."""
    import string

    from PIL import Image, ImageDraw, ImageFont

    def paper():
        image = Image.new("L", (160, 160), 255)
        return image, ImageDraw.Draw(image)

    found: dict[str, list] = {"scribbles": [], "letters": [], "smudges": []}
    for _ in range(scribbles):
        image, draw = paper()
        points = [tuple(int(v) for v in rng.integers(20, 140, 2)) for _ in range(rng.integers(4, 9))]
        draw.line(points, fill=0, width=int(rng.integers(6, 12)), joint="curve")
        found["scribbles"].append(np.asarray(image, np.float32))
    font = ImageFont.load_default(size=120)
    for letter in string.ascii_letters:
        image, draw = paper()
        draw.text((30, 10), letter, fill=0, font=font)
        found["letters"].append(np.asarray(image, np.float32))
    for _ in range(smudges):
        image, draw = paper()
        for _ in range(rng.integers(1, 4)):
            (x, y), (w, h) = rng.integers(30, 110, 2), rng.integers(10, 50, 2)
            draw.ellipse((int(x), int(y), int(x + w), int(y + h)), fill=int(rng.integers(0, 90)))
        found["smudges"].append(np.asarray(image, np.float32))
    return found


def bad_pictures(rng: np.random.Generator) -> dict[str, bytes]:
    """Files a reader must answer (or refuse) clearly and quickly: an empty canvas, a single dot, hundreds
    of blobs, a 40-megapixel photo, pure noise, a transparent PNG with strokes on it."""
    import io

    from PIL import Image, ImageDraw

    def encoded(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        return buffer.getvalue()

    found = {"empty canvas": encoded(Image.new("L", (600, 300), 255))}
    dot = Image.new("L", (600, 300), 255)
    ImageDraw.Draw(dot).ellipse((300, 150, 306, 156), fill=0)
    found["single dot"] = encoded(dot)
    blobs = Image.new("L", (1600, 800), 255)
    draw = ImageDraw.Draw(blobs)
    for x, y in rng.integers(10, (1580, 780), (600, 2)):
        draw.ellipse((int(x), int(y), int(x) + 8, int(y) + 8), fill=0)
    found["hundreds of blobs"] = encoded(blobs)
    # a photo of paper: a light gradient with a 1 written on it, 8000x5000 (40 megapixels)
    photo = Image.linear_gradient("L").resize((8000, 5000)).point(lambda v: 160 + v // 4)
    ImageDraw.Draw(photo).line([(4000, 1200), (3900, 3800)], fill=20, width=160)  # a 1
    found["40-megapixel photo"] = encoded(photo, "JPEG", quality=85)
    found["pure noise"] = encoded(Image.fromarray(rng.integers(0, 256, (400, 800), dtype=np.uint8)))
    clear = Image.new("RGBA", (600, 300), (0, 0, 0, 0))
    ImageDraw.Draw(clear).line([(280, 60), (300, 240)], fill=(0, 0, 0, 255), width=16)
    found["transparent PNG"] = encoded(clear)
    return found


def photo_of_paper(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A clean picture (0 ink .. 255 paper) as a phone photo or a scan of paper gives it: uneven light
    (paper from dim to bright across the picture), ink of low contrast, a faint ruled line under the
    writing, sensor noise and specks."""
    height, width = gray.shape
    ink = (255.0 - gray) / 255.0  # 0 paper .. 1 ink
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height) / 2 + 0.5  # 0 .. 1 across
    dim, bright = rng.uniform(70, 130), rng.uniform(200, 250)  # a shadow over part of the page
    paper = dim + (bright - dim) * ramp
    darkness = rng.uniform(0.35, 0.65)  # how much darker than the paper the ink is
    picture = paper * (1 - darkness * ink)
    line = int(rng.integers(int(0.8 * height), height - 2))  # a ruled line, fainter than the ink
    picture[line : line + 2] *= 1 - 0.25 * darkness
    picture += rng.normal(0, 6, picture.shape)
    specks = rng.integers(0, (height, width), (int(rng.integers(5, 20)), 2))
    picture[specks[:, 0], specks[:, 1]] *= 0.5
    return np.clip(picture, 0, 255).astype(np.float32)


def fine_pen(digits: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """MNIST digits as a fine pen writes them in a large picture: the number composed 160 to 260 pixels
    tall (so about 1,000 to 2,000 wide) and each stroke traced along its middle line (`middle_line`: as
    connected as the stroke), 3 to 5 pixels wide (1.5 to 3 once the picture is scaled to 800 pixels for
    reading)."""
    from scipy import ndimage

    gray = compose_number(digits, rng, height=int(rng.integers(160, 260)), margin=40)
    core = ndimage.binary_dilation(middle_line(gray < 128), iterations=int(rng.integers(1, 3)))
    return np.where(core, 0.0, 255.0).astype(np.float32)


# Zhang and Suen's thinning (1984): a pixel's 8 neighbours, clockwise from north, as the bits of a code
_NEIGHBOURS = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]


def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each of the 256 neighbourhoods: may the pixel go in the first, the second sub-iteration."""
    first, second = np.zeros(256, bool), np.zeros(256, bool)
    for code in range(256):
        p = [(code >> k) & 1 for k in range(8)]  # north, north-east, ..., north-west
        ink = sum(p)
        runs = sum(p[k] == 0 and p[(k + 1) % 8] == 1 for k in range(8))  # 0 -> 1 steps around it
        n, _, e, _, s, _, w, _ = p
        removable = 2 <= ink <= 6 and runs == 1  # an edge pixel whose removal splits nothing
        first[code] = removable and n * e * s == 0 and e * s * w == 0
        second[code] = removable and n * e * w == 0 and n * s * w == 0
    return first, second


def middle_line(mask: np.ndarray) -> np.ndarray:
    """The one-pixel middle line of every stroke of a boolean mask, as connected as the stroke was (a
    stroke's ridge of distance to the paper breaks where the stroke's width changes; thinning does not)."""
    tables = _thinning_tables()
    line = np.pad(np.asarray(mask, bool), 1)
    ys, xs = np.nonzero(line)
    changed = True
    while changed:
        changed = False
        for table in tables:
            code = np.zeros(len(ys), np.int32)
            for bit, (dy, dx) in enumerate(_NEIGHBOURS):
                code |= line[ys + dy, xs + dx].astype(np.int32) << bit
            gone = table[code]  # decided on the picture as it was: one parallel step
            if gone.any():
                line[ys[gone], xs[gone]] = False
                ys, xs = ys[~gone], xs[~gone]
                changed = True
    return line[1:-1, 1:-1]


def sheared(gray: np.ndarray, slant: float) -> np.ndarray:
    """A picture (0 ink .. 255 paper) sheared as slanted writing is: each row moved right by `slant`
    times its height above the bottom (slant 0.35 leans the writing about 19 degrees to the right;
    negative, to the left). The picture widens to hold it."""
    from PIL import Image

    height, width = gray.shape
    pad = int(np.ceil(abs(slant) * height))
    # PIL maps each output pixel (x, y) to the input's (x - slant * (height - y) - offset, y)
    offset = pad if slant < 0 else 0
    image = Image.fromarray(np.asarray(gray, np.float32), mode="F").transform(
        (width + pad, height),
        Image.Transform.AFFINE,
        (1.0, slant, -slant * height - offset, 0.0, 1.0, 0.0),
        resample=Image.Resampling.BILINEAR,
        fillcolor=255.0,
    )
    return np.asarray(image, np.float32)


def varied(digits: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A spaced number as different hands and pens write it: 30 to 150 pixels tall, each digit turned by
    up to 15 degrees either way, the strokes thickened, thinned or left as they are (by about a fortieth
    of the height on each side), and the ink anywhere from black to a faint 30% of the way to it."""
    from PIL import Image
    from scipy import ndimage

    turned = [
        np.asarray(Image.fromarray(d).rotate(rng.uniform(-15, 15), Image.Resampling.BILINEAR, expand=True))
        for d in digits
    ]
    height = int(rng.integers(30, 151))
    ink = 255.0 - compose_number(turned, rng, height=height)
    size = 2 * max(1, round(height / 40)) + 1
    pen = rng.choice(["thick", "thin", "as written"])
    if pen == "thick":
        ink = ndimage.grey_dilation(ink, size=(size, size))
    elif pen == "thin":
        ink = ndimage.grey_erosion(ink, size=(size, size))
    return 255.0 - ink * rng.uniform(0.3, 1.0)
