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
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src import UserError
from src.sweeps.names import run_name
from src.training.callbacks import TrialPruned

log = logging.getLogger(__name__)

SWEEP_FILE = "mlflow_sweep.json"
ERROR_FILE = "error.txt"


@dataclass(frozen=True)
class TrialEnd:
    """What a job returns when it did not complete: `state` FAIL or PRUNED, and why.

    The search (hydra/sweeper=optuna_search) tells Optuna that state; a grid sweep ignores it. Taken as a
    number (hydra-optuna-sweeper's own loop does), it raises, and that sweeper records a failed trial.
    """

    state: str
    message: str

    def __float__(self) -> float:
        raise TrialNotComplete(f"{self.state}: {self.message}")


class TrialNotComplete(Exception):
    pass


class MlflowSweep(Callback):
    """Configured in conf/train.yaml (hydra.callbacks); does nothing for single runs."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        from src import tracking
        from src.sweeps import search

        # Hydra sets this once the sweeper starts; the sweep directory (${hydra:runtime.cwd}/...) and the
        # study's storage need it now
        HydraConfig.instance().set_config(config)
        sweep_dir = Path(config.hydra.sweep.dir)
        overrides = list(config.hydra.overrides.task)
        with _one_line_errors():
            experiment_id = tracking.use_store(config.tracking)
            assert experiment_id is not None  # created where new: always an id
            parent_run_id = tracking.start_sweep(
                experiment_id,
                run_name=f"sweep-{sweep_dir.parent.name}-{sweep_dir.name}",
                overrides=overrides,
                sweep_dir=str(sweep_dir.absolute()),
                tags=search.study_tags(config.hydra.sweeper),
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
        from src import tracking
        from src.sweeps import comparison, search

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
        verdict = too_many_failures(tracking.child_runs(parent_run_id), config.hydra.sweeper)
        comparison.compare_sweep(parent_run_id, config.tracking)
        search.log_study(parent_run_id, config.hydra.sweeper)
        tracking.end_sweep(parent_run_id, "FAILED" if verdict else "FINISHED")
        if verdict:
            raise UserError(verdict)


def too_many_failures(runs: list, sweeper: DictConfig) -> str | None:
    """Why the sweep as a whole failed (None: it did not): a search stopped because more than
    `max_failure_rate` of its `n_trials` failed, or every job failed. Pruned trials are not failures."""
    failed = [r for r in runs if r.info.status == "FAILED"]
    if not failed:
        return None
    first = " ".join(failed[0].data.tags.get("error", "no error recorded").split())[:400]
    rate, trials = sweeper.get("max_failure_rate"), sweeper.get("n_trials")
    if rate is not None and trials and "pruner" in sweeper and len(failed) > rate * trials:
        return (
            f"the search stopped: {len(failed)} of its {trials} trials failed, more than "
            f"hydra.sweeper.max_failure_rate={rate}; the first: {first}"
        )
    if len(failed) == len(runs):
        return f"every job of the sweep failed ({len(failed)}); the first: {first}"
    return None


def abort(sweep_dir: str, message: str) -> None:
    """Stop a sweep before its first job: the parent run ends FAILED with the reason, which is printed in
    one line; exit code 2."""
    from src import tracking
    from src.tracking import records

    info = json.loads((Path(sweep_dir) / SWEEP_FILE).read_text())
    records.use_tracking_uri(info["tracking_uri"])
    tracking.end_sweep(info["parent_run_id"], "FAILED", error=message)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """In the launching process, Hydra would print a user's mistake (a refused login) as a traceback."""
    from src.tracking import access

    try:
        with access.refusals():
            yield
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def job_context(hydra_cfg: DictConfig) -> dict[str, Any]:
    """For a job of a sweep: its store and parent run, a run name saying what differs, tags, and for a
    search's trial with a pruner, what reporting to the pruner needs."""
    info = json.loads((Path(hydra_cfg.sweep.dir) / SWEEP_FILE).read_text())
    overrides = list(hydra_cfg.overrides.task)
    tags = {"sweep.job_num": str(hydra_cfg.job.num), "sweep.overrides": " ".join(overrides)}
    sweeper = hydra_cfg.sweeper
    if sweeper.get("trial") is not None:
        tags["optuna.trial"] = str(sweeper.trial)
    context = {
        "tracking_uri": info["tracking_uri"],
        "parent_run_id": info["parent_run_id"],
        "run_name": run_name(overrides, info["overrides"]) or f"job{hydra_cfg.job.num}",
        "tags": tags,
    }
    pruner = str((sweeper.get("pruner") or {}).get("_target_", "optuna.pruners.NopPruner"))
    if sweeper.get("trial") is not None and sweeper.get("storage") and not pruner.endswith("NopPruner"):
        from src.sweeps.search import pruning_callback

        # the training makes its callback (Keras loads after the job's devices are set)
        context["pruner"] = functools.partial(
            pruning_callback, sweeper.storage, sweeper.study_name, sweeper.trial, sweeper.pruner
        )
    return context


def _job_overrides(job_dir: Path) -> list[str]:
    import yaml

    path = job_dir / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.exists() else []


def record_job_error(output_dir: str, error: BaseException) -> TrialEnd:
    """A failed job leaves its error beside its log and tells the sweeper it failed (or was pruned)."""
    if isinstance(error, TrialPruned):
        return TrialEnd("PRUNED", str(error))
    Path(output_dir, ERROR_FILE).write_text(f"{type(error).__name__}: {error}")
    return TrialEnd("FAIL", f"{type(error).__name__}: {error}")


def run_job(cfg: DictConfig, hydra_cfg: Any, train: Callable[..., dict[str, float]]) -> float | TrialEnd:
    """One job of a sweep: `train` as a child run of the sweep's parent. A job that fails must not stop
    the sweep: its run is FAILED, its error recorded, and the comparison shows it."""
    from omegaconf import open_dict

    from src import config

    output_dir = hydra_cfg.runtime.output_dir
    try:
        config.validate_training(cfg)
        context = job_context(hydra_cfg)
        with open_dict(cfg):
            cfg.tracking.uri = context["tracking_uri"]
        scores = train(cfg, output_dir, sweep=context)
        return scores.get("val_accuracy", scores["test_accuracy"])
    except TrialPruned as e:
        log.info("trial pruned: %s", e)
        return record_job_error(output_dir, e)
    except Exception as e:
        log.error("job failed: %s: %s", type(e).__name__, e, exc_info=not isinstance(e, UserError))
        return record_job_error(output_dir, e)


def work_from_launch_directory(launch_dir: str) -> None:
    """Relative paths (data.path, caches, checkpoints, mlruns/) mean the directory the command ran in,
    also in a job that a launcher (Ray, submitit) starts elsewhere."""
    import os

    if Path.cwd() != Path(launch_dir):
        log.info("job runs in %s: working from the launch directory %s", Path.cwd(), launch_dir)
        os.chdir(launch_dir)
