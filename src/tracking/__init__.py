"""Tracking: everything that talks to MLflow.

- `store`: where the store is and its experiment (and the lock for a shared SQLite file);
- `runs`: a run's life and what it records, and a sweep's parent and child runs;
- `scores`: what a trained model scored: evaluations, calibration, the digit score;
- `opening`: a training's run, opened in a thread while the model starts training;
- `registry`: registered models, their reading models and the `champion` alias;
- `records`: what the rest of the code reads or writes by a model's URI or a run's id (nothing outside
  this package imports MLflow but the reading model's flavour);
- `rebuild`: a run's config rebuilt from its record, for `python -m src.rerun`;
- `access`: logins to a tracking server and its refusals; `environment`: the machine a run ran on;
- `plots`: the figures a run logs.

The functions of `store`, `runs`, `scores` and `registry` are the package's API
(`tracking.use_store(cfg)`), loaded on first use: importing `src.tracking.access`, `store`, `opening` or
`records` alone does not import MLflow.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module of this package that defines it
_API = {
    "CHAMPION": "registry",
    "DEFAULT_STORE": "store",
    "MODEL_ARTIFACT": "registry",
    "artifact_location": "store",
    "beats": "registry",
    "best_version": "registry",
    "champion_version": "registry",
    "check_folder": "store",
    "check_resumable": "runs",
    "child_job_numbers": "runs",
    "child_runs": "runs",
    "end_run": "runs",
    "end_sweep": "runs",
    "flatten": "runs",
    "follow_champion": "registry",
    "git_tags": "runs",
    "load_classifier": "registry",
    "load_reading_classifier": "registry",
    "log_calibration": "scores",
    "log_config": "runs",
    "log_dataset": "runs",
    "keep_digit_score": "scores",
    "log_digit_score": "scores",
    "log_distribution": "runs",
    "log_environment": "runs",
    "log_evaluation": "scores",
    "log_fallbacks": "runs",
    "log_init_from": "runs",
    "log_feature_cache": "runs",
    "log_logging_time": "runs",
    "log_model": "registry",
    "log_model_size": "runs",
    "log_precision": "runs",
    "log_route": "runs",
    "log_setup": "runs",
    "log_training": "runs",
    "log_xla": "runs",
    "model_signature": "registry",
    "opened": "opening",
    "promote_champion": "registry",
    "reader_version": "registry",
    "register_reader": "registry",
    "record_failed_job": "runs",
    "register": "registry",
    "resolve_uri": "store",
    "run": "runs",
    "start_run": "runs",
    "start_sweep": "runs",
    "store_lock": "store",
    "use_store": "store",
    "version_scores": "registry",
    "wait_open": "opening",
    "when_open": "opening",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
