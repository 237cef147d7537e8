"""The frozen-backbone feature cache: pay the backbone's forward pass once per image, not once per epoch.

While the backbone is frozen and nothing changes the images between epochs (no augmentation), its
output for each digit is the same in every epoch. The features are computed once, kept on disk under a
key made of everything that determines them (the feature network's architecture with its input size,
preprocessing and precision, the backbone's weights, the data), and the top trains on them. Runs that
only change the top, the optimizer or the schedule (a sweep over them) share the same file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from src.data import Digits, batches

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def unusable_because(cfg, network) -> str | None:
    """Why the cache cannot give exactly the same training (None: it can)."""
    if cfg.training.feature_cache in (False, "false", "off"):
        return "training.feature_cache=false"
    if not network.frozen:
        return f"the backbone is trained too (backbone.fine_tune={cfg.backbone.fine_tune})"
    if cfg.augmentation.layers:
        return f"augmentation={cfg.augmentation.name} changes the images every epoch"
    return None


def cache_key(network, digits: Digits) -> str:
    from src.model import weights_digest

    architecture = json.dumps(_describe(network.features), sort_keys=True, default=str)
    parts = [architecture, weights_digest(network.features), digits.digest]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _describe(layer) -> list:
    """Every layer's class and settings in order, without the names Keras numbers per process."""
    inner = getattr(layer, "layers", None)
    if inner is not None:
        return [type(layer).__name__, [_describe(sub) for sub in inner]]
    config = {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable")}
    return [type(layer).__name__, config]


def backbone_features(network, digits: Digits, cache_dir: str | Path, batch_size: int = 256):
    """Features of the train, validation and test digits, from the cache or computed (and stored) now.

    Returns (features by split, "hit" or "computed", seconds it took, seconds of those spent on the
    test digits when computed: evaluation, not training).
    """
    start = time.perf_counter()
    path = Path(cache_dir) / f"{cache_key(network, digits)}.npz"
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
