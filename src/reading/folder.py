"""A folder of labelled pictures (`data=folder`) as a run's Digits: one subfolder per digit (0/ ... 9/)
of PNG, JPEG, BMP or TIFF pictures of single digits, optionally under train/ and test/.

Each picture goes through the reader's own crop-and-normalise step (`src.reading.one_digit`), in
parallel processes for large folders, with a progress bar. Nothing is written.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from src import UserError
from src.data import NUM_CLASSES, Digits, load_digits
from src.data.mnist import _limit, _split
from src.reading.one_digit import digit_picture

log = logging.getLogger(__name__)

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SPLITS = ("train", "test")
LAYOUT = "expected subfolders 0/ ... 9/ of pictures, optionally under train/ and test/"
CHUNK = 500  # pictures per task of a worker process
IN_PROCESS = 2000  # fewer pictures than this are read here: starting processes would take longer


def load_data(cfg: DictConfig, strict: bool = False, evaluation: bool = False) -> Digits:
    """The data of a run as the `data` group configures it: a folder of pictures, or MNIST."""
    if cfg.name == "folder":
        return load_folder(cfg, strict=strict or bool(cfg.get("strict")), evaluation=evaluation)
    return load_digits(cfg, strict=strict)


def list_pictures(root: Path) -> dict[str, list[tuple[str, int]]]:
    """The pictures and labels of each part of the folder: "pool" (the digit folders at the top and
    under train/) and "test"; subfolders starting with "." or "_" are skipped."""
    if not root.is_dir():
        raise UserError(f"data.path: no such folder: {root} ({LAYOUT})")
    parts: dict[str, list[tuple[str, int]]] = {"pool": [], "test": []}
    for part, folder in (("pool", root), ("pool", root / "train"), ("test", root / "test")):
        if not folder.is_dir():
            continue
        for sub in sorted(folder.iterdir()):
            if not sub.is_dir() or sub.name[0] in "._" or (folder == root and sub.name in SPLITS):
                continue
            if sub.name not in {str(d) for d in range(NUM_CLASSES)}:
                raise UserError(f"data.path: {sub}: not a digit folder ({LAYOUT})")
            with os.scandir(sub) as found:  # names, not Path objects: a folder may hold 60,000
                pictures = sorted(e.path for e in found if e.name.lower().endswith(SUFFIXES) and e.is_file())
            parts[part] += [(p, int(sub.name)) for p in pictures]
    if not parts["pool"] and not parts["test"]:
        raise UserError(f"data.path: {root} holds no pictures ({LAYOUT}; {', '.join(SUFFIXES)})")
    return parts


def read_pictures(
    paths: list[str], strict: bool, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The crops of the pictures, (N, 28, 28) uint8, and which were read (N,) bool. A picture that
    cannot be read (or holds no ink) is skipped and counted in the log; with `strict`, refused."""
    images = np.zeros((len(paths), 28, 28), np.uint8)
    read = np.zeros(len(paths), bool)
    failures: list[str] = []
    chunks = [range(i, min(i + CHUNK, len(paths))) for i in range(0, len(paths), CHUNK)]
    workers = workers or min(os.cpu_count() or 1, 8)
    with _progress(len(paths)) as bar:

        def done(chunk: range, crops: np.ndarray, ok: np.ndarray, errors: list[str]) -> None:
            if errors and strict:
                raise UserError(f"{errors[0]} (data.strict=true refuses a picture that cannot be read)")
            images[chunk.start : chunk.stop], read[chunk.start : chunk.stop] = crops, ok
            failures.extend(errors)
            bar.update(len(chunk))

        if len(paths) < IN_PROCESS or workers == 1:
            for chunk in chunks:
                done(chunk, *read_chunk(paths[chunk.start : chunk.stop]))
        else:
            _in_processes(paths, chunks, workers, done)
    if failures:
        shown = "; ".join(failures[:3]) + ("; ..." if len(failures) > 3 else "")
        log.warning("data: %d of %d pictures skipped (cannot be read): %s", len(failures), len(paths), shown)
    return images, read


def _in_processes(paths: list[str], chunks: list[range], workers: int, done: Callable) -> None:
    """The chunks read by `workers` processes, a few ahead of the one being taken in: each chunk's
    crops are let go once copied, so memory holds the pictures once."""
    import multiprocessing
    from collections import deque

    # a fresh interpreter per worker ("spawn"): a fork of a process that may hold TensorFlow's threads
    # can hang
    context = multiprocessing.get_context("spawn")
    waiting = deque(chunks)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        running: deque = deque()
        try:
            while waiting or running:
                while waiting and len(running) < 2 * workers:
                    chunk = waiting.popleft()
                    running.append((chunk, pool.submit(read_chunk, paths[chunk.start : chunk.stop])))
                chunk, future = running.popleft()
                done(chunk, *future.result())
        except BaseException:
            for _, future in running:
                future.cancel()
            raise


def read_chunk(paths: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Crops of some pictures (a worker's task): the crops, which were read, and why the others were not."""
    crops = np.zeros((len(paths), 28, 28), np.uint8)
    ok = np.zeros(len(paths), bool)
    errors = []
    for index, path in enumerate(paths):
        try:
            crops[index] = digit_picture(Path(path).read_bytes(), path)
            ok[index] = True
        except UserError as e:
            errors.append(str(e))
        except OSError as e:
            errors.append(f"{path}: cannot be read ({e.strerror or e})")
    return crops, ok, errors


def _progress(total: int):
    """A progress bar on stderr where someone watches (a terminal), silent otherwise."""
    from tqdm import tqdm

    return tqdm(total=total, unit=" pictures", desc="data: reading pictures", disable=None, leave=False)


def load_folder(cfg: DictConfig, strict: bool = False, evaluation: bool = False) -> Digits:
    """The folder's pictures split into train/validation/test: test/ where the folder has one (else a
    seeded share, data.test_split), validation a seeded share of the rest (data.val_split). For an
    evaluation (`evaluation`) every picture is in the test split (test/ alone where there is one).

    The split is made on the labels (the folders' names) before any picture is read, and the pictures
    are read in its order into one array: the splits are views of it, no copies (a picture that cannot
    be read leaves its split, which then is one)."""
    if not cfg.path:
        raise UserError(f"data.path: give the folder of pictures (data=folder data.path=DIR; {LAYOUT})")
    root = Path(str(cfg.path)).expanduser().absolute()
    parts = list_pictures(root)
    if evaluation:
        parts = {"pool": [], "test": parts["test"] or parts["pool"]}
    labels = {part: np.array([label for _, label in found], np.int64) for part, found in parts.items()}
    if not evaluation and not cfg.get("mix_mnist"):
        _check_classes(root, np.concatenate(list(labels.values())))
    order = _split_order(root, cfg, labels, evaluation)
    paths = [parts[part][i][0] for part, indices in order for i in indices]
    start = time.perf_counter()
    images, read = read_pictures(paths, strict, cfg.get("workers"))
    if not read.any():
        raise UserError(f"data.path: none of the {len(paths)} pictures could be read")
    log.info("data: %d pictures read from %s in %.1f s", read.sum(), root, time.perf_counter() - start)
    splits, at = [], 0
    for part, indices in order:
        x, y, ok = images[at : at + len(indices)], labels[part][indices], read[at : at + len(indices)]
        splits += [x, y] if ok.all() else [x[ok], y[ok]]
        at += len(indices)
    digits = Digits("folder", str(root), *splits)
    if cfg.get("mix_mnist") and not evaluation:
        digits = mix_mnist(digits, cfg, strict)
    return digits


def _split_order(root: Path, cfg: DictConfig, labels: dict, evaluation: bool) -> list:
    """(part, indices into it) of the training, validation and test splits, in that order."""
    pool = np.arange(len(labels["pool"]))
    test = ("test", np.arange(len(labels["test"])))
    if not evaluation and not len(test[1]):
        pool, _, held, _ = _held_out(root, pool, labels["pool"], cfg.test_split, cfg.split_seed)
        test = ("pool", held)
    val_split = 0.0 if evaluation else cfg.val_split
    train, _, val, _ = _held_out(root, pool, labels["pool"][pool], val_split, cfg.split_seed)
    train = _limit(train, train, cfg.get("train_limit"))[0]
    test = (test[0], _limit(test[1], test[1], cfg.get("test_limit"))[0])
    return [("pool", train), ("pool", val), test]


def _held_out(root: Path, x: np.ndarray, y: np.ndarray, share: float, seed: int):
    """A seeded share of the pictures held out (stratified where every digit has two or more)."""
    try:
        return _split(x, y, share, seed)
    except ValueError:  # scikit-learn's: a share of too few pictures is none, or all of them
        raise UserError(
            f"data.path: {root}: {len(y)} pictures are too few to hold out {share:g} of them "
            "(add pictures, or give train/ and test/ folders)"
        ) from None


def _check_classes(root: Path, labels: np.ndarray) -> None:
    present = sorted(set(labels.tolist()))
    if len(present) < 2:
        raise UserError(
            f"data.path: {root} holds pictures of one digit only ({present[0]}): a classifier trains on two "
            "or more (add folders of other digits, or mix MNIST in with data.mix_mnist)"
        )


def mix_mnist(digits: Digits, cfg: DictConfig, strict: bool) -> Digits:
    """MNIST's training digits mixed into the training and validation splits, to make up data.mix_mnist
    of each (so that a fine-tune on a few pictures does not forget MNIST); the test split stays the
    folder's."""
    share = float(cfg.mix_mnist)
    mnist_cfg = OmegaConf.create(
        {"name": "mnist", "path": cfg.get("mnist_path"), "train_limit": None, "test_limit": None,
         "val_split": 0.0, "split_seed": cfg.split_seed}
    )  # fmt: skip
    mnist = load_digits(mnist_cfg, strict=strict)
    rng = np.random.default_rng(cfg.split_seed)
    order = rng.permutation(len(mnist.y_train))
    wanted = [round(share / (1 - share) * len(y)) for y in (digits.y_train, digits.y_val)]
    if sum(wanted) > len(order):
        wanted = [round(w * len(order) / sum(wanted)) for w in wanted]
    picks = order[: wanted[0]], order[wanted[0] : wanted[0] + wanted[1]]
    log.info("data: %d + %d MNIST digits mixed into training and validation (data.mix_mnist=%s)",
             wanted[0], wanted[1], share)  # fmt: skip
    return Digits(
        "folder+mnist",
        f"{digits.source} + {mnist.source}",
        np.concatenate([digits.x_train, mnist.x_train[picks[0]]]),
        np.concatenate([digits.y_train, mnist.y_train[picks[0]]]),
        np.concatenate([digits.x_val, mnist.x_train[picks[1]]]),
        np.concatenate([digits.y_val, mnist.y_train[picks[1]]]),
        digits.x_test,
        digits.y_test,
        fallbacks=mnist.fallbacks,
    )
