"""Tracking: everything that talks to MLflow. It records what the domain returns (src/results.py) and
imports no domain package.

- `recorder`: a command's run and what it records: opened in the background (`opening`), then told the
  route, the training, the evaluations, the calibration, the digit score, and the model to register;
- `store`: where the store is and its experiment (and the lock for a shared SQLite file);
- `runs`: a run's life and what it records, and a sweep's parent and child runs;
- `scores`: what a trained model scored: evaluations, calibration, the digit score;
- `opening`: a training's run, opened in a thread while the model starts training;
- `registry`: registered models, their reading models (logged by the reading model's flavour, which the
  caller hands in) and the `champion` alias;
- `records`: what the rest of the code reads or writes by a model's URI or a run's id (nothing outside
  this package imports MLflow but the reading model's flavour);
- `rebuild`: a run's config rebuilt from its record, for `python -m src.rerun`;
- `access`: logins to a tracking server and its refusals; `environment`: the machine a run ran on;
- `plots`: the figures a run logs.

The names below are the package's API for the store, the sweeps' runs and the registry
(`tracking.use_store(cfg)`), loaded on first use: importing `src.tracking.access`, `store`, `opening`,
`recorder` or `records` alone does not import MLflow. A command records its run through the recorder.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what each name is, for mypy (at run time each is loaded on first use, below)
    from src.tracking.registry import (
        CHAMPION as CHAMPION,
    )
    from src.tracking.registry import (
        MODEL_ARTIFACT as MODEL_ARTIFACT,
    )
    from src.tracking.registry import (
        beats as beats,
    )
    from src.tracking.registry import (
        best_version as best_version,
    )
    from src.tracking.registry import (
        champion_version as champion_version,
    )
    from src.tracking.registry import (
        follow_champion as follow_champion,
    )
    from src.tracking.registry import (
        load_classifier as load_classifier,
    )
    from src.tracking.registry import (
        load_reading_classifier as load_reading_classifier,
    )
    from src.tracking.registry import (
        promote_champion as promote_champion,
    )
    from src.tracking.registry import (
        reader_version as reader_version,
    )
    from src.tracking.registry import (
        register_reader as register_reader,
    )
    from src.tracking.registry import (
        version_scores as version_scores,
    )
    from src.tracking.runs import (
        check_resumable as check_resumable,
    )
    from src.tracking.runs import (
        child_job_numbers as child_job_numbers,
    )
    from src.tracking.runs import (
        child_runs as child_runs,
    )
    from src.tracking.runs import (
        end_sweep as end_sweep,
    )
    from src.tracking.runs import (
        flatten as flatten,
    )
    from src.tracking.runs import (
        git_tags as git_tags,
    )
    from src.tracking.runs import (
        record_failed_job as record_failed_job,
    )
    from src.tracking.runs import (
        run as run,
    )
    from src.tracking.runs import (
        start_sweep as start_sweep,
    )
    from src.tracking.scores import (
        keep_digit_score as keep_digit_score,
    )
    from src.tracking.store import (
        DEFAULT_STORE as DEFAULT_STORE,
    )
    from src.tracking.store import (
        artifact_location as artifact_location,
    )
    from src.tracking.store import (
        check_folder as check_folder,
    )
    from src.tracking.store import (
        resolve_uri as resolve_uri,
    )
    from src.tracking.store import (
        store_lock as store_lock,
    )
    from src.tracking.store import (
        use_store as use_store,
    )


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
    "end_sweep": "runs",
    "flatten": "runs",
    "follow_champion": "registry",
    "git_tags": "runs",
    "load_classifier": "registry",
    "load_reading_classifier": "registry",
    "keep_digit_score": "scores",
    "promote_champion": "registry",
    "reader_version": "registry",
    "register_reader": "registry",
    "record_failed_job": "runs",
    "resolve_uri": "store",
    "run": "runs",
    "start_sweep": "runs",
    "store_lock": "store",
    "use_store": "store",
    "version_scores": "registry",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
