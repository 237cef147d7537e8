"""Hydra multirun <-> MLflow: one parent run per sweep, each job a nested child run, a comparison at the end.

The parent run is created before any job starts (in the launching process), which also creates the
experiment and migrates the store once, so parallel jobs never race on either. A server's refusal (no
login, no permission) stops the sweep there, in one line, before any job starts or any directory is made.

Jobs log in as the launching process did: MLflow reads MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD from each worker's environment (launchers pass theirs on), never from the
config, so the login is in no parameter, tag, saved config or artifact.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src import UserError

log = logging.getLogger(__name__)

SWEEP_FILE = "mlflow_sweep.json"
ERROR_FILE = "error.txt"
_SHORT = {"learning_rate": "lr", "batch_size": "bs"}


class MlflowSweep(Callback):
    """Configured in conf/train.yaml (hydra.callbacks); does nothing for single runs."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from src import tracking

        sweep_dir = Path(config.hydra.sweep.dir)
        overrides = list(config.hydra.overrides.task)
        with _one_line_errors():
            experiment_id = tracking.use_store(config.tracking)
            parent_run_id = tracking.start_sweep(
                experiment_id,
                run_name=f"sweep-{sweep_dir.parent.name}-{sweep_dir.name}",
                overrides=overrides,
                sweep_dir=str(sweep_dir.absolute()),
            )
        # jobs may run on other machines (submitit, Ray) without this process's environment: they log
        # where the parent run is
        store = tracking.resolve_uri(config.tracking.uri)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / SWEEP_FILE).write_text(
            json.dumps({"parent_run_id": parent_run_id, "overrides": overrides, "tracking_uri": store})
        )
        log.info("sweep: MLflow parent run %s", parent_run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        with _one_line_errors():
            self._finish(config)

    def _finish(self, config: DictConfig) -> None:
        from src import compare, tracking

        sweep_dir = Path(config.hydra.sweep.dir)
        info = json.loads((sweep_dir / SWEEP_FILE).read_text())
        parent_run_id = info["parent_run_id"]
        tracking.use_store(config.tracking)
        recorded = tracking.child_job_numbers(parent_run_id)
        for job_dir in sorted(
            (d for d in sweep_dir.iterdir() if d.name.isdigit()), key=lambda d: int(d.name)
        ):
            if int(job_dir.name) not in recorded:  # failed before its run began: record it as failed
                overrides = _job_overrides(job_dir)
                error_file = job_dir / ERROR_FILE
                tracking.record_failed_job(
                    parent_run_id,
                    run_name=run_name(overrides, info["overrides"]) or f"job{job_dir.name}",
                    job_num=int(job_dir.name),
                    overrides=overrides,
                    error=error_file.read_text()
                    if error_file.exists()
                    else "the job ended before its run began",
                )
        compare.compare_sweep(parent_run_id, config.tracking)
        tracking.end_sweep(parent_run_id)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """In the launching process, Hydra would print a user's mistake (a refused login) as a traceback."""
    from src import access

    try:
        with access.refusals():
            yield
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def job_context(hydra_cfg: DictConfig) -> dict[str, Any]:
    """For a job of a sweep: its store and parent run, a run name saying what differs, and tags."""
    info = json.loads((Path(hydra_cfg.sweep.dir) / SWEEP_FILE).read_text())
    overrides = list(hydra_cfg.overrides.task)
    return {
        "tracking_uri": info["tracking_uri"],
        "parent_run_id": info["parent_run_id"],
        "run_name": run_name(overrides, info["overrides"]) or f"job{hydra_cfg.job.num}",
        "tags": {"sweep.job_num": str(hydra_cfg.job.num), "sweep.overrides": " ".join(overrides)},
    }


def run_name(job_overrides: list[str], sweep_overrides: list[str]) -> str:
    """`vgg19`, `resnet50-lr0.001`: the job's overrides that the sweep varies, values first."""
    varied = [o.lstrip("+~").partition("=")[::2] for o in job_overrides if o not in sweep_overrides]
    leaves = [key.rsplit(".", 1)[-1] for key, _ in varied]
    parts = []
    for key, value in varied:
        value = _short_number(value)
        if "." not in key:  # a config group choice speaks for itself
            parts.append(value)
            continue
        leaf = key.rsplit(".", 1)[-1]
        if leaves.count(leaf) > 1:  # top.layers.1.rate and top.layers.3.rate: keep what tells them apart
            leaf = ".".join(key.rsplit(".", 2)[-2:])
        parts.append(f"{_SHORT[leaf]}{value}" if leaf in _SHORT else f"{leaf}={value}")
    return "-".join(parts)


def _short_number(value: str) -> str:
    """Optuna's 0.0005611516415334506 reads as 0.000561 in a run name."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if len(value) <= 8 else f"{number:.3g}"


def _job_overrides(job_dir: Path) -> list[str]:
    import yaml

    path = job_dir / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.exists() else []


def record_job_error(output_dir: str, error: BaseException) -> float:
    """A failed job leaves its error beside its log and gives the sweeper a failed score."""
    Path(output_dir, ERROR_FILE).write_text(f"{type(error).__name__}: {error}")
    return math.nan
