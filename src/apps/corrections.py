"""Corrections from the drawing page: a drawing the model misread, saved with the right number as a folder
of labelled pictures in the data=folder layout, ready to train or fine-tune on
(`python -m src.train +experiment=fine_tune_own data.path=DIR`).

    DIR/3/<id>-0.png ...     each digit's crop, as the reader cut it, under its right digit
    DIR/_drawings/<id>.png   the whole drawing (skipped by data=folder: its name starts with "_")
    DIR/index.jsonl          one line per correction: id, time, model, the number read and the right one

Several tabs, and several servers, may save at once: each picture is written under a temporary name and
renamed into place, and a correction is counted once its line is in the index, which is appended under a
lock on DIR/.lock; a save that fails takes its pictures back.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from src import UserError

INDEX = "index.jsonl"
DRAWINGS = "_drawings"
_DIGITS = re.compile(r"[0-9]+")


def check_label(label: object, read: str) -> str:
    """The right number typed under a reading of `read`: digits only, as many as were read."""
    text = str(label).strip() if isinstance(label, str | int) and not isinstance(label, bool) else ""
    if not _DIGITS.fullmatch(text):
        raise UserError(f"the right number: digits only, 0-9 (got {str(label)[:40]!r})")
    if len(text) != len(read):
        raise UserError(
            f"the right number {text} has {len(text)} digit{'s' * (len(text) != 1)}, the drawing was read "
            f"as {len(read)} ({read or 'none'}): each digit read needs its right one (redraw to read "
            "another count)"
        )
    return text


class Corrections:
    """A corrections folder (made on first save)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().absolute()
        self._lock = threading.Lock()  # this process's threads; the file lock is for other processes

    def count(self) -> int:
        """Corrections saved (the index's lines)."""
        try:
            with open(self.root / INDEX, encoding="utf-8") as index:
                return sum(1 for line in index if line.strip())
        except FileNotFoundError:
            return 0

    def save(self, drawing: bytes, crops: list[np.ndarray], read: str, label: str, model: str) -> dict:
        """Save a drawing and its crops under the right number; returns the index's line (with the count)."""
        label = check_label(label, read)
        if len(crops) != len(label):
            raise UserError(f"the right number has {len(label)} digits, {len(crops)} crops were cut")
        key = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        files = [f"{DRAWINGS}/{key}.png"] + [f"{d}/{key}-{k}.png" for k, d in enumerate(label)]
        written: list[Path] = []
        try:
            self._write(self.root / files[0], drawing, written)
            for name, crop in zip(files[1:], crops, strict=True):
                self._write(self.root / name, _png(crop), written)
            entry: dict = {"id": key, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model": model,
                     "read": read, "label": label, "files": files}  # fmt: skip
            line = json.dumps(entry) + "\n"
            with self._locked():
                with open(self.root / INDEX, "a", encoding="utf-8") as index:
                    index.write(line)
                    index.flush()
                    os.fsync(index.fileno())
                entry["count"] = self.count()
        except BaseException:
            for path in written:  # nothing half-written: a correction is its pictures and its line
                path.unlink(missing_ok=True)
            raise
        return entry

    def _write(self, path: Path, data: bytes, written: list[Path]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)  # atomic: a reader sees the whole picture or none
        written.append(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
