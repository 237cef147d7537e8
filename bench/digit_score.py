"""Where the digit score is paid: fitted at training, or by the model's first reader."""

from __future__ import annotations

import time

from bench.context import Bench
from bench.runs import train_command


def digit_score_costs(b: Bench) -> dict:
    """A fast_baseline command fitting it at training against the same command leaving it to the model's
    first reader (whole commands, crops already in the cache), and that reader's first load of the model
    (the fit, kept in the run) against its next (kept)."""
    import mlflow

    from src.apps.classifier import Classifier

    assert b.full_data is not None
    store, tmp = b.store, b.tmp
    cache = f"training.feature_cache_dir={tmp / 'cache_digit_score'}"
    preset = ["+experiment=fast_baseline", *b.full_data, cache]
    train_command(store, tmp / "digit_score_fill", *preset, "training.digit_score.when=training")
    at_training = train_command(
        store, tmp / "digit_score_training", *preset, "training.digit_score.when=training"
    )
    when_read = train_command(store, tmp / "digit_score_read", *preset, "training.digit_score.when=read")
    mlflow.set_tracking_uri(store)
    version = mlflow.get_run(when_read["run_id"]).data.tags["registered_model"].split("/")[1]
    loads = []
    for _ in range(2):
        start = time.perf_counter()
        Classifier(f"models:/handwritten-digits/{version}", store)
        loads.append(time.perf_counter() - start)
    return {
        "digit_score_at_training_command_s": at_training["wall_s"],
        "digit_score_when_read_command_s": when_read["wall_s"],
        "digit_score_when_read_vs_at_training": when_read["wall_s"] / at_training["wall_s"],
        "digit_score_first_read_load_s": loads[0],
        "digit_score_kept_read_load_s": loads[1],
    }
