"""Crops cut once: generated non-digits and digits cut out as a reader cuts them, kept on disk.

Cutting them takes seconds of CPU (a few thousand pictures drawn, segmented and cropped) and gives the
same crops for the same inputs, so they are kept beside the backbone's features
(`training.feature_cache_dir`, under crops/), each set under a key of everything that decides it: what
the caller names (the digits' content digest, the counts, the seed) and a digest of the code that draws
and cuts them with the versions of the libraries that render them. A changed drawing or cutting is a
new key, never a stale hit. A file is written under a temporary name and renamed into place, so
parallel jobs never read half of one; two jobs missing at once both cut and the last rename wins, with
the same content.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from src.reading import segmentation

log = logging.getLogger(__name__)

# The code the crops come from (paths under src/): the generated pictures, the reader's cutting (segmentation
# and the steps it reads with), the training fonts' digits, and the two modules that choose and draw them.
CODE = (
    "data/pictures.py",
    "data/training_fonts.py",
    *segmentation.MODULES,
    "training/digit_score.py",
    "training/non_digits.py",
    "training/crop_cache.py",
)
FOLDER = "crops"


@functools.cache
def code_digest() -> str:
    """A digest of the code that draws and cuts the crops, and of the libraries that render them."""
    from importlib.metadata import version

    h = hashlib.sha256()
    root = Path(__file__).parents[1]
    for name in CODE:
        h.update(name.encode())
        h.update((root / name).read_bytes())
    for package in ("numpy", "pillow", "scipy", "matplotlib"):
        try:
            h.update(f"{package}=={version(package)}".encode())
        except Exception:  # not installed: the digest says so by its absence
            h.update(f"{package}: none".encode())
    return h.hexdigest()[:16]


def array_digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for array in arrays:
        h.update(str(array.shape).encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def path_for(cache_dir: str | Path, kind: str, parts: dict) -> Path:
    """The file of the crops `kind` made from `parts` (what the caller says decides them) by this code."""
    described = json.dumps({**parts, "code": code_digest()}, sort_keys=True, default=str)
    key = hashlib.sha256(described.encode()).hexdigest()[:24]
    return Path(cache_dir) / FOLDER / f"{kind}-{key}.npz"


def load(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays kept at `path` (None: none kept, or the file is unreadable and will be written again)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, ValueError, KeyError, EOFError) as e:
        log.warning("crop cache: %s is unreadable (%s); cutting again", path, e)
        return None


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Keep `arrays` at `path`, atomically (a reader sees the whole file or none). A cache that cannot
    be written (a read-only folder, a full disk) only costs the next start its cutting."""
    partial = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(partial, **arrays)  # type: ignore[arg-type]
        os.replace(partial, path)
    except OSError as e:
        log.warning("crop cache: could not keep %s (%s)", path, e)
        partial.unlink(missing_ok=True)


def cached(
    cache_dir: str | Path | None, kind: str, parts: dict, cut: Callable[[], dict[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], bool]:
    """The crops from the cache, or `cut()` now and kept (no `cache_dir`: always cut, nothing kept);
    and whether they came from the cache."""
    if cache_dir is None:
        return cut(), False
    path = path_for(cache_dir, kind, parts)
    found = load(path)
    if found is not None:
        log.info("crop cache: loaded %s", path)
        return found, True
    arrays = cut()
    save(path, arrays)
    return arrays, False
