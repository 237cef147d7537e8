"""A run's life and what it records: params, environment, data, route, metrics, and the parent and child
runs of a sweep (what the trained model scored: scores.py). Training code hands results here; it does not
call MLflow itself."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import traceback
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import mlflow
from omegaconf import DictConfig, OmegaConf

from src import UserError
from src.config import leaves
from src.results import Data, Setup
from src.tracking import access
from src.tracking.store import retry_races

log = logging.getLogger(__name__)


@contextlib.contextmanager
def run(
    run_name: str,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> Iterator:
    """An MLflow run that ends FINISHED, FAILED (crash, with the error attached) or KILLED (interrupt).

    With run_id, an earlier run is continued instead of a new one started.
    """
    active = start_run(run_name, parent_run_id, tags, run_id)
    try:
        yield active
    except BaseException as e:
        end_run(e)
        raise
    else:
        end_run()


def start_run(
    run_name: str,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> mlflow.ActiveRun:
    """Start a run (or continue run_id) as this thread's active run."""
    if run_id:
        active = mlflow.start_run(run_id=run_id)
        mlflow.set_tag("resumed", "true")
        return active
    tags = {**git_tags(), **(tags or {})}
    return mlflow.start_run(run_name=run_name, parent_run_id=parent_run_id, tags=tags)


def end_run(error: BaseException | None = None) -> None:
    """End the active run: FINISHED, KILLED for an interrupt, else FAILED with the error attached (called
    while `error` is being handled, so its traceback is logged too)."""
    if error is None:
        mlflow.end_run("FINISHED")
    elif isinstance(error, KeyboardInterrupt):
        mlflow.set_tag("error", "interrupted (SIGINT/SIGTERM)")
        mlflow.end_run("KILLED")
    else:
        mlflow.set_tag("error", f"{type(error).__name__}: {error}"[:5000])
        mlflow.set_tags(getattr(error, "tags", {}))
        if getattr(error, "run_status", "FAILED") == "FAILED":  # a trial the pruner stopped ends KILLED
            mlflow.log_text(traceback.format_exc(), "error/traceback.txt")
        mlflow.end_run(getattr(error, "run_status", "FAILED"))


def check_resumable(run_id: str, checkpoint_dir: str) -> None:
    """A run can be continued when it exists, has not finished, and left a checkpoint."""
    try:
        status = mlflow.get_run(run_id).info.status
    except mlflow.exceptions.MlflowException as e:
        if access.refusal(e):
            raise
        raise UserError(f"training.resume: no run {run_id!r} in {mlflow.get_tracking_uri()}") from None
    if status == "FINISHED":
        raise UserError(f"training.resume: run {run_id} has already FINISHED")
    if not Path(checkpoint_dir).is_dir():
        raise UserError(f"training.resume: run {run_id} left no checkpoint in {checkpoint_dir}")


def git_tags() -> dict[str, str]:
    """The commit the code ran from (and whether it had local changes), when run from a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"mlflow.source.git.commit": commit, "git.dirty": str(bool(dirty)).lower()}


def flatten(cfg: DictConfig) -> dict[str, str]:
    """The composed config as dotted keys (backbone.name, top.layers.1.units, ...), as logged params: an
    empty list is "[]", an empty mapping no param."""
    flat = {
        key: str(value)
        for key, value in leaves(OmegaConf.to_container(cfg, resolve=True)).items()
        if value != {}
    }
    flat.pop("training.resume", None)  # a resumed run keeps its params: the resume itself is a tag
    return flat


def log_config(cfg: DictConfig, hydra_output_dir: str | None = None) -> None:
    """Every parameter, flattened, plus the composed config (and Hydra's own record of the run)."""
    mlflow.log_params(flatten(cfg))
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
    hydra_dir = Path(hydra_output_dir or "", ".hydra")
    if hydra_output_dir and hydra_dir.is_dir():
        mlflow.log_artifacts(str(hydra_dir), "config/hydra")


def log_environment() -> None:
    """What the run ran on, as env.* tags (versions, CPU and its instruction sets, GPUs, threads), and
    the installed packages as environment/requirements.txt."""
    from src.tracking import environment

    mlflow.set_tags({f"env.{key}": value for key, value in environment.describe().items()})
    mlflow.log_text(environment.requirements(), "environment/requirements.txt")


def log_model_size(sizes: Mapping[str, int]) -> None:
    mlflow.log_params({f"model.{key}": value for key, value in sizes.items()})


def log_distribution(replicas: int, devices: list[str]) -> None:
    """How the run was spread (training.strategy says how): its number of replicas and their devices."""
    mlflow.log_param("distribute.replicas", replicas)
    mlflow.set_tag("distribute.devices", ", ".join(devices))


def log_dataset(data: Data) -> None:
    """Name, source, sizes and digest of the data, as MLflow dataset inputs and tags."""
    from mlflow.data.numpy_dataset import from_numpy

    for context, (x, y) in data.splits.items():
        with warnings.catch_warnings():  # a local path "can be interpreted in multiple ways"
            warnings.simplefilter("ignore", UserWarning)
            dataset = from_numpy(x, targets=y, source=data.source, name=f"{data.name}-{context}")
        retry_races(mlflow.log_input, dataset, context=context)
    mlflow.set_tags(
        {
            "data.name": data.name,
            "data.source": data.source,
            "data.digest": data.digest,
            **{f"data.{split}_size": str(size) for split, size in data.sizes.items()},
        }
    )


def log_init_from(uri: str, run_id: str | None) -> None:
    """A fine-tune's starting point (training.init_from, a param) and the run that logged it: an alias
    such as @champion moves, the run does not."""
    mlflow.set_tags({"init_from": uri, "init_from.run_id": run_id or ""})


def log_feature_cache(state: str, seconds: float | None, test_seconds: float | None = None) -> None:
    """hit, computed, or off with the reason; the time it took to load or compute the features, and of
    that the time spent on the test digits' features (evaluation, which an uncached run pays after
    training too)."""
    mlflow.set_tag("feature_cache", state)
    if seconds is not None:
        mlflow.log_metric("feature_cache_s", seconds)
    if test_seconds is not None:
        mlflow.log_metric("feature_cache_test_s", test_seconds)


def log_precision(policy: str, chosen_by: str) -> None:
    """The precision the run trained in (training.precision=auto picks it) and how it was chosen."""
    mlflow.set_tags({"precision": policy, "precision.chosen_by": chosen_by})


def log_route(route: str, why: str) -> None:
    """exact, cached or echoed: whether the top trained on backbone features, and why."""
    mlflow.set_tags({"training.route": route, "training.route.why": why})


def log_xla(used: bool, steps: int) -> None:
    """Whether the training step was compiled with XLA (training.jit_compile), and for how many steps."""
    mlflow.set_tags({"training.xla": str(used).lower(), "training.steps": str(steps)})


def log_logging_time(seconds: float) -> None:
    mlflow.log_metric("logging_time_s", seconds)


def log_fallbacks(fallbacks: list[str]) -> None:
    mlflow.set_tag("fallback", str(bool(fallbacks)).lower())
    for fallback in fallbacks:
        kind, _, message = fallback.partition(": ")
        mlflow.set_tag(f"fallback.{kind}", message)


def log_training(seconds: float) -> None:
    """Training time, epochs run and the learning curves, from the run's own per-epoch metrics
    (complete even when the run was resumed)."""
    from src.tracking import plots

    client = mlflow.MlflowClient()
    active = mlflow.active_run()
    assert active is not None, "called inside the run"
    run_id = active.info.run_id
    history = {
        key: [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy")
    }
    mlflow.log_metrics({"training_time_s": seconds, "epochs_run": len(history["loss"])})
    figure = plots.learning_curves_figure(dict(history))
    mlflow.log_figure(figure, "learning_curves.png")
    plots.plt.close(figure)


def start_sweep(
    experiment_id: str,
    run_name: str,
    overrides: list[str],
    sweep_dir: str,
    tags: Mapping[str, str] | None = None,
) -> str:
    """The parent run of a sweep, left RUNNING (children need an active parent) until end_sweep."""
    run = mlflow.MlflowClient().create_run(
        experiment_id,
        run_name=run_name,
        tags={
            "sweep": "true",
            "sweep.dir": sweep_dir,
            "sweep.overrides": " ".join(overrides),
            **git_tags(),
            **(tags or {}),
        },
    )
    return run.info.run_id


def end_sweep(parent_run_id: str, status: str = "FINISHED", error: str | None = None) -> None:
    client = mlflow.MlflowClient()
    if error:
        client.set_tag(parent_run_id, "error", error[:5000])
    client.set_terminated(parent_run_id, status)


def child_runs(parent_run_id: str) -> list:
    """The runs of a sweep in launch order."""
    parent = mlflow.get_run(parent_run_id)
    return mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        order_by=["start_time ASC"],
        output_format="list",
    )


def child_job_numbers(parent_run_id: str) -> set[int]:
    return {
        int(r.data.tags["sweep.job_num"]) for r in child_runs(parent_run_id) if "sweep.job_num" in r.data.tags
    }


def record_failed_job(
    parent_run_id: str, run_name: str, job_num: int, overrides: list[str], error: str
) -> None:
    """A job that failed before its run began still shows in the sweep, as FAILED with its error."""
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_run_id)
    run = client.create_run(
        parent.info.experiment_id,
        run_name=run_name,
        tags={
            "mlflow.parentRunId": parent_run_id,
            "sweep.job_num": str(job_num),
            "sweep.overrides": " ".join(overrides),
            "error": error[:5000],
        },
    )
    client.set_terminated(run.info.run_id, "FAILED")


def log_setup(cfg: DictConfig, hydra_output_dir: str | None, setup: Setup) -> None:
    """What a run is before it fits or scores anything: its config, machine, model size, devices, data,
    fallbacks and precision (with what chose it), and a fine-tune's starting point."""
    log_config(cfg, hydra_output_dir)
    log_environment()
    log_model_size(setup.model_size)
    log_distribution(setup.replicas, setup.devices)
    log_dataset(setup.data)
    log_fallbacks(setup.fallbacks)
    log_precision(*setup.precision)
    if setup.init_from:
        log_init_from(*setup.init_from)
