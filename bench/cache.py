"""The feature cache: its epochs against an uncached epoch in process, and its speed-up on a whole
command (VGG16 on 4,096 digits)."""

from __future__ import annotations

import numpy as np

from bench.context import Bench
from bench.runs import framework_run, train_command
from bench.speed import COMMON


def cache_epochs(b: Bench) -> int:
    return 4 if b.quick else 25


def cache_on_off(b: Bench) -> dict:
    """The cached route's first epoch (the features computed), its later ones, and all of it against one
    uncached epoch."""
    data = ["data=mnist_sample"] if b.quick else ["data=mnist", *b.data_path]
    epochs = cache_epochs(b)
    cache_dir = f"training.feature_cache_dir={b.tmp / 'feature_cache'}"
    cached = framework_run(b.store, *COMMON, *data, f"training.epochs={epochs}", cache_dir)
    # the uncached run only times an epoch (the mean of those after the first): three are enough (quick:
    # two), and 25 uncached epochs on full MNIST were an hour of the full bench
    uncached = framework_run(
        b.store, *COMMON, *data, f"training.epochs={2 if b.quick else 3}", "training.feature_cache=false"
    )
    # the test digits' features are evaluation, which the uncached run pays after its epochs too
    training_features = cached["feature_cache_s"] - cached["feature_cache_test_s"]
    first_cached = training_features + cached["epoch_times_s"][0]
    uncached_epoch = float(np.mean(uncached["epoch_times_s"][1:] or uncached["epoch_times_s"]))
    later = float(np.mean(cached["epoch_times_s"][1:]))
    total = training_features + sum(cached["epoch_times_s"])
    return {
        "cache_train_size": cached["train_size"],
        "cache_epochs": epochs,
        "cached_first_epoch_s": first_cached,
        "cached_later_epoch_s": later,
        "cached_later_vs_first": later / first_cached,
        "cached_total_s": total,
        "cached_test_features_s": cached["feature_cache_test_s"],
        "uncached_epoch_s": uncached_epoch,
        "cached_total_vs_one_uncached_epoch": total / uncached_epoch,
        "uncached_epochs": len(uncached["epoch_times_s"]),
    }


def cache_command_speedup(b: Bench) -> dict:
    """The feature cache's speed-up on a whole command: VGG16 (random weights) on 4,096 digits for 6
    epochs in float32, the cached route with its cache already on disk against the uncached route."""
    assert b.full_data is not None
    store, tmp = b.store, b.tmp
    command = [
        "backbone=vgg16", "backbone.weights=null", *b.full_data, "data.train_limit=4096", "augmentation=none",
        "training.epochs=6", "training.precision=float32",
        f"training.feature_cache_dir={tmp / 'cache_vgg16'}",
    ]  # fmt: skip
    train_command(store, tmp / "cache_fill", *command)  # the features computed and kept
    cached = train_command(store, tmp / "cache_cached", *command)
    uncached = train_command(store, tmp / "cache_uncached", *command, "training.feature_cache=false")
    return {
        "cache_command_cached_s": cached["wall_s"],
        "cache_command_uncached_s": uncached["wall_s"],
        "cache_command_speedup": uncached["wall_s"] / cached["wall_s"],
        "cache_command_accuracies": [round(cached["test_accuracy"], 4), round(uncached["test_accuracy"], 4)],
    }
