"""A command's start and end: start to first training step, end-of-run logging and registration, one
digit's prediction latency through the registered model, and the peak memory of a full-MNIST run."""

from __future__ import annotations

import sys

import numpy as np

from bench.context import Bench
from bench.runs import ROOT, USAGE, latest_run, run_command


def latency(model_uri: str, store: str, repeats: int = 300) -> tuple[float, float]:
    """p50 and p99 milliseconds of one digit through the loaded registered model."""
    import time

    from src.apps.classifier import Classifier

    classifier = Classifier(model_uri, store)
    digit = np.load(ROOT / "src/data/mnist_sample.npz")["x_test"][:1]
    for _ in range(20):
        classifier.probabilities(digit)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        classifier.probabilities(digit)
        times.append(1000 * (time.perf_counter() - start))
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def startup_logging_latency(b: Bench) -> dict:
    """The smoke preset as a user runs it: its start and its logging, then its model's latency."""
    import mlflow

    smoke = [sys.executable, "-m", "src.train", "+experiment=smoke", "backbone.weights=null"]
    run_command([*smoke, "hydra.run.dir=" + str(b.tmp / "run")], {"MLFLOW_TRACKING_URI": b.store})
    mlflow.set_tracking_uri(b.store)
    last = latest_run()
    rows = {
        "startup_s": last.data.metrics["startup_s"],
        "startup_command_usage": USAGE[-1],
        "logging_and_registration_s": last.data.metrics["logging_time_s"],
    }
    version = last.data.tags["registered_model"].split("/")[1]
    rows["latency_p50_ms"], rows["latency_p99_ms"] = latency(f"models:/handwritten-digits/{version}", b.store)
    return rows


def full_mnist_memory(b: Bench) -> dict:
    """The peak memory of the whole command on full MNIST with VGG16, one epoch: the peak is in caching the
    features of 70,000 digits, before epoch 1."""
    tmp = b.tmp
    memory_args = [
        sys.executable, "-m", "src.train", "data=mnist", *b.data_path, "backbone.weights=null",
        "augmentation=none", "training.epochs=1",
        f"training.feature_cache_dir={tmp / 'feature_cache_memory'}",
        f"hydra.run.dir={tmp / 'run_memory'}",
    ]  # fmt: skip
    _, wall, peak_kb = run_command(memory_args, {"MLFLOW_TRACKING_URI": b.store})
    run = latest_run()
    return {
        "full_mnist_run_s": wall,
        "full_mnist_peak_memory_gib": peak_kb / 1024**2,
        "full_mnist_data": run.data.tags.get("data.name"),  # the sample stands in offline without --data
    }
