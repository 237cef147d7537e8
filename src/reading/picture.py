"""Pictures in: the bytes of a PNG, JPEG, ... as grayscale, read at one working size."""

from __future__ import annotations

import io

import numpy as np

from src import UserError

MAX_PIXELS = 40_000_000  # larger pictures are refused (PIL's own bomb limit is about 179 million)
WORK_SIZE = 800  # pictures are scaled down to this longest side before segmentation


def decode(data: bytes, name: str = "image") -> np.ndarray:
    """Bytes of a PNG/JPEG/... to grayscale floats (0 black, 255 white); transparency becomes white."""
    from PIL import Image, UnidentifiedImageError

    try:
        image: Image.Image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError):
        raise UserError(f"{name}: not an image (expected PNG, JPEG, GIF, BMP or WebP)") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise UserError(f"{name}: too large ({width}x{height}; at most {MAX_PIXELS // 1_000_000} megapixels)")
    try:
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{name}: cannot be decoded ({e})") from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    image = image.convert("L")
    size = work_size(*image.size)
    if size:  # scaled in 8 bits: a 40-megapixel photo in a fraction of a second
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32)


def picture_size(data: bytes) -> tuple[int, int]:
    """A picture's (width, height) as stored, from its header (`decode` has checked it is a picture)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def work_size(width: int, height: int) -> tuple[int, int] | None:
    """The size a picture is read at: WORK_SIZE on its longest side (None: it is not larger)."""
    scale = WORK_SIZE / max(width, height)
    if scale >= 1:
        return None
    return max(1, round(width * scale)), max(1, round(height * scale))


def at_work_size(gray: np.ndarray) -> np.ndarray:
    """A grayscale array as `decode` would read it from a file: scaled down to WORK_SIZE."""
    from PIL import Image

    size = work_size(gray.shape[1], gray.shape[0])
    if size is None:
        return gray
    small = Image.fromarray(np.asarray(gray, np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(small, np.float32), 0, 255)  # LANCZOS overshoots at sharp edges


def larger_picture(gray: np.ndarray, scale: float) -> np.ndarray:
    """A grayscale picture `scale` times as large (bicubic)."""
    from PIL import Image

    size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))
    larger = Image.fromarray(np.asarray(gray, np.float32), mode="F").resize(size, Image.Resampling.BICUBIC)
    return np.clip(np.asarray(larger, np.float32), 0, 255)  # bicubic overshoots at sharp edges
