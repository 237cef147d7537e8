"""The frozen-backbone feature cache: pay the backbone's forward pass once per image, not once per epoch.

While the backbone is frozen and nothing changes the images between epochs (no augmentation), its
output for each digit is the same in every epoch. The features are computed once, kept on disk under a
key made of everything that determines them (the feature network's architecture with its input size,
preprocessing and precision, the backbone's weights, the data), and the top trains on them. Runs that
only change the top, the optimizer or the schedule (a sweep over them) share the same file.

With augmentation the images change every epoch, so the features would too. Data echoing (Choi et al.
2019, "Faster Neural Network Training with Data Echoing") computes the features of
training.echo_views augmented views of every training digit once, and each epoch draws one of them per
digit: the backbone runs echo_views times over the training digits instead of once per epoch. It is an
approximation of the exact training (a digit is seen in echo_views rotations, not a new one each
epoch): `training.feature_cache=false` trains the exact way. Validation and test digits are not
augmented; their features are computed once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from src.data import Digits, batches

if TYPE_CHECKING:
    from collections.abc import Iterator

    import keras
    import tensorflow as tf
    from omegaconf import DictConfig

    from src.models.networks import Network

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def route(cfg: DictConfig, network: Network) -> tuple[str, str]:
    """How the run trains, and why: "cached" (the top on features computed once: the same training),
    "echoed" (the top on features of a few augmented views per digit) or "exact" (the whole model on
    the digits every epoch)."""
    if cfg.training.feature_cache is False:
        return "exact", "training.feature_cache=false"
    if not network.frozen:
        return "exact", f"the backbone is trained too (backbone.fine_tune={cfg.backbone.fine_tune})"
    if cfg.augmentation.layers:
        views, epochs = cfg.training.echo_views, cfg.training.epochs
        if not views:
            return (
                "exact",
                f"augmentation={cfg.augmentation.name} changes the images every epoch (echo_views=0)",
            )
        if epochs <= views:  # the backbone would run over the training digits as often either way
            return (
                "exact",
                f"training.epochs={epochs} is not more than echo_views={views}: echoing saves nothing",
            )
        return "echoed", f"features of {views} augmented view(s) per training digit, one drawn each epoch"
    return "cached", "frozen backbone, no augmentation: the features are the same every epoch"


def cache_key(network: Network, digits: Digits, echo: dict | None = None) -> str:
    """Everything the features depend on; for echoed views also the augmentation, views and seed."""
    from src.models.networks import weights_digest

    architecture = json.dumps(_describe(network.features), sort_keys=True, default=str)
    parts = [architecture, weights_digest(network.features), digits.digest]
    if echo:
        parts.append(json.dumps(echo, sort_keys=True, default=str))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _describe(layer: keras.Layer) -> list:
    """Every layer's class and settings in order, without the names Keras numbers per process."""
    inner = getattr(layer, "layers", None)
    if inner is not None:
        return [type(layer).__name__, [_describe(sub) for sub in inner]]
    config = {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable")}
    return [type(layer).__name__, config]


def backbone_features(
    network: Network,
    digits: Digits,
    cache_dir: str | Path,
    batch_size: int = 256,
    augment: keras.Layer | None = None,
    views: int = 0,
    echo: dict | None = None,
) -> tuple[dict[str, np.ndarray], str, float, float | None]:
    """Features of the train, validation and test digits, from the cache or computed (and stored) now.

    With `augment` (a Keras layer) and `views`, the training split's features are those of `views`
    augmented copies of every training digit, shape (views, digits, ...), kept in float16 (half the
    memory; the top trains on them in its own precision); `echo` describes them for the cache key.
    Returns (features by split, "hit" or "computed", seconds it took, seconds of those spent on the
    test digits when computed: evaluation, not training).
    """
    start = time.perf_counter()
    path = Path(cache_dir) / f"{cache_key(network, digits, echo if augment is not None else None)}.npz"
    if path.exists():
        try:
            with np.load(path) as stored:
                features = {split: stored[split] for split in SPLITS}
            log.info("feature cache: loaded %s", path)
            return features, "hit", time.perf_counter() - start, None
        except (OSError, ValueError, KeyError) as e:  # a damaged file is recomputed
            log.warning("feature cache: %s is unreadable (%s); computing again", path, e)
    images = {"train": digits.x_train, "validation": digits.x_val, "test": digits.x_test}
    features, test_seconds = {}, 0.0
    for split in SPLITS:
        split_start = time.perf_counter()
        x = images[split]
        if split == "train" and augment is not None:
            features[split] = _views(network, x, augment, views, batch_size)
            continue
        computed = (
            network.forward_features.predict(batches(x[..., None], batch_size), verbose=0) if len(x) else None
        )
        features[split] = (
            np.asarray(computed, np.float32)
            if computed is not None
            else np.zeros((0, *network.features.output.shape[1:]), np.float32)
        )
        if split == "test":
            test_seconds = time.perf_counter() - split_start
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(partial, **features)
    os.replace(partial, path)  # atomic: parallel jobs never read a half-written file
    seconds = time.perf_counter() - start
    log.info("feature cache: computed %s in %.1f s", path.name, seconds)
    return features, "computed", seconds, test_seconds


def _views(network: Network, x: np.ndarray, augment: keras.Layer, views: int, batch_size: int) -> np.ndarray:
    """The features of `views` augmented copies of the digits x: (views, len(x), ...) in float16."""
    import tensorflow as tf

    from src.data import pipeline_options

    shape = tuple(network.features.output.shape[1:])
    out = np.zeros((views, len(x), *shape), np.float16)
    if not len(x):
        return out
    for view in range(views):
        start = time.perf_counter()
        augmented = (
            tf.data.Dataset.from_tensor_slices(x[..., None])
            .batch(batch_size)
            .map(lambda images: augment(tf.cast(images, tf.float32), training=True))
            .with_options(pipeline_options())
        )
        out[view] = network.forward_features.predict(augmented, verbose=0)
        log.info("feature cache: augmented view %d/%d of %d digits in %.1f s", view + 1, views, len(x),
                 time.perf_counter() - start)  # fmt: skip
    return out


def echo_dataset(views: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Batches of (features, labels) in a new order each epoch, each digit's features drawn from one of
    its augmented views at random (seeded: the same run draws the same sequence)."""
    import math

    import tensorflow as tf

    count, n = (int(d) for d in views.shape[:2])
    rng = np.random.default_rng(seed)

    def epoch() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order, pick = rng.permutation(n), rng.integers(0, count, n)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            yield views[pick[start : start + batch_size], index].astype(np.float32), y[index]

    dataset = tf.data.Dataset.from_generator(
        epoch,
        output_signature=(
            tf.TensorSpec((None, *views.shape[2:]), tf.float32),
            tf.TensorSpec((None,), tf.as_dtype(y.dtype)),
        ),
    )
    steps = math.ceil(n / batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)
