"""MNIST and its offline sample, as numpy arrays and tf.data pipelines.

Digits stay compact (uint8, 28x28) until the model needs them: resizing, channels and the backbone's
preprocessing live inside the model, so the saved model takes raw MNIST-like input.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from src import UserError
from src.results import Data

if TYPE_CHECKING:
    import keras
    import tensorflow as tf
    from omegaconf import DictConfig

log = logging.getLogger(__name__)

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)
SAMPLE_PATH = Path(__file__).parent / "mnist_sample.npz"
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class Digits:
    """The train/validation/test arrays of one run and where they came from."""

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    fallbacks: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()[:16]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}

    def record(self) -> Data:
        """The digits as a run records them (src/results.py)."""
        splits = {
            "training": (self.x_train, self.y_train),
            "validation": (self.x_val, self.y_val),
            "test": (self.x_test, self.y_test),
        }
        return Data(self.name, self.source, self.digest, self.sizes(), splits)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read a Keras-layout mnist.npz and check it is one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data.path: no such file: {path}")
    import zipfile

    if not zipfile.is_zipfile(path):  # else np.load takes it for a pickle and says so
        raise UserError(f"data.path: {path} is not an .npz archive (expected Keras's mnist.npz)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in _ARRAYS if k in f}
    except Exception as e:  # zip/npy decoding errors come in many types
        raise UserError(f"data.path: {path} is not a readable .npz archive ({e})") from None
    missing = [k for k in _ARRAYS if k not in arrays]
    if missing:
        raise UserError(
            f"data.path: {path} lacks {', '.join(missing)} (expected arrays: {', '.join(_ARRAYS)})"
        )
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE or len(x) != len(y) or y.ndim != 1:
            raise UserError(
                f"data.path: {path}: x_{split} must be (N, 28, 28) with y_{split} (N,); "
                f"got {x.shape} and {y.shape}"
            )
        if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise UserError(f"data.path: {path}: y_{split} holds labels outside 0-9")
    return arrays


def download_mnist() -> Path | None:
    """The Keras download/cache of full MNIST, or None when it cannot be had (no network, no cache)."""
    import keras

    try:
        return Path(keras.utils.get_file("mnist.npz", MNIST_URL, cache_subdir="datasets"))
    except Exception as e:  # Keras wraps every network failure in a bare Exception
        log.debug("MNIST download failed: %s", e)
        return None


def load_digits(cfg: DictConfig, strict: bool = False) -> Digits:
    """The data of a run as configured by the `data` group, falling back to the sample when offline."""
    fallbacks: list[str] = []
    if cfg.name == "mnist_sample":
        name, source = "mnist_sample", str(SAMPLE_PATH)
    elif cfg.name == "mnist":
        name = "mnist"
        found = cfg.path or download_mnist()
        if found is None:
            message = (
                f"full MNIST could not be downloaded ({MNIST_URL}) and is not cached; "
                "set data.path to a local mnist.npz"
            )
            if strict:
                raise UserError(message + " (strict=true)")
            fallbacks.append(f"data: {message}; using mnist_sample ({SAMPLE_PATH.name}) instead")
            name, found = "mnist_sample", SAMPLE_PATH
        source = str(found)
    else:
        raise UserError(f"data.name: unknown dataset {cfg.name!r} (valid: mnist, mnist_sample)")

    arrays = read_npz(Path(source).expanduser().absolute())
    x_train, y_train = _limit(arrays["x_train"], arrays["y_train"], cfg.train_limit)
    x_test, y_test = _limit(arrays["x_test"], arrays["y_test"], cfg.test_limit)
    x_train, y_train, x_val, y_val = _split(x_train, y_train, cfg.val_split, cfg.split_seed)
    return Digits(
        name=name,
        source=str(source),
        x_train=x_train.astype(np.uint8),
        y_train=y_train.astype(np.int64),
        x_val=x_val.astype(np.uint8),
        y_val=y_val.astype(np.int64),
        x_test=x_test.astype(np.uint8),
        y_test=y_test.astype(np.int64),
        fallbacks=fallbacks,
    )


def _limit(x: np.ndarray, y: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    return (x, y) if limit is None else (x[:limit], y[:limit])


def _split(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out a stratified fraction of the training set for validation: the same split as scikit-learn's
    train_test_split(test_size=fraction, random_state=seed, stratify=y), drawn here with numpy (importing
    scikit-learn's model_selection took 0.8 s of every command's start-up)."""
    if not fraction:
        return x, y, x[:0], y[:0]
    train, val = _split_indices(np.asarray(y), fraction, seed, _stratifiable(y, fraction))
    return x[train], y[train], x[val], y[val]


def _split_indices(y: np.ndarray, fraction: float, seed: int, stratify: bool):
    """The (train, validation) indices of scikit-learn's train_test_split (its ShuffleSplit or
    StratifiedShuffleSplit, the same draws from the same RandomState)."""
    n = len(y)
    n_val = int(np.ceil(fraction * n))
    n_train = n - n_val
    rng = np.random.RandomState(seed)
    if not stratify:
        permutation = rng.permutation(n)
        return permutation[n_val : n_val + n_train], permutation[:n_val]
    _, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_val, rng)
    train: list = []
    val: list = []
    for i in range(len(class_counts)):
        chosen = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(chosen[: n_i[i]])
        val.extend(chosen[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(val)


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """scikit-learn's approximate mode of the multivariate hypergeometric (ties broken by `rng`)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def _stratifiable(y: np.ndarray, fraction: float) -> bool:
    counts = np.bincount(y)
    counts = counts[counts > 0]
    return counts.min() >= 2 and int(len(y) * fraction) >= len(counts)


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = False,
    augment: keras.Layer | None = None,
    seed: int = 0,
    deterministic: bool = False,
) -> tf.data.Dataset:
    """A batched tf.data pipeline of x as it is (uint8 digits stay uint8); `augment` runs per batch.

    The shuffle is seeded. `deterministic` maps the augmentation one batch after the other: in a
    parallel map the random layers draw their seeds in whatever order the threads run, so the same batch
    could be rotated differently from one run to the next.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(
            lambda images, labels: (augment(tf.cast(images, tf.float32), training=True), labels),
            num_parallel_calls=None if deterministic else tf.data.AUTOTUNE,
        )
    return ds.prefetch(tf.data.AUTOTUNE).with_options(pipeline_options())


def batches(x: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """x in batches, as it is, for prediction (the same options as training's pipeline)."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size).with_options(pipeline_options())


def pipeline_options() -> tf.data.Options:
    """tf.data options without the autotuner.

    On a 2-core CPU, with the autotuner on, the model's own ops kept only about 1.4 of the 2 cores busy
    in a third to four fifths of the passes over the data, which made those passes 30% slower (VGG16
    features: 400 instead of 570 images/s). With it off, every pass kept both cores busy. Parallel maps
    then use as many threads as there are cores, and prefetching still runs ahead of the model.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options
