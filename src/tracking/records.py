"""What the rest of the code reads from the store, or writes to it, by a model's URI or a run's id: a
model's record and weights, a registered version pinned, an experiment, a run's config, metrics and
figures.

Outside src/tracking/, nothing imports MLflow itself (tests/test_architecture.py keeps the list of the
modules still waiting to move). MLflow is imported inside each function: importing this module does not
import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.tracking import access

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure
    from mlflow.entities import Metric, Run
    from omegaconf import DictConfig

__all__ = ["Metric", "NotFound", "Run"]  # MLflow's types of what is read here, for type hints elsewhere


class NotFound(Exception):  # noqa: N818 (what it says: the store has no such thing)
    """The store has nothing at a URI (or it does not load); the message is the store's own first line.
    A refused login or permission is not this: it propagates as MLflow raised it."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def model_info(uri: str) -> Any:
    """MLflow's record of the model at `uri` (its flavors and the run that logged it), read without
    loading the model."""
    import mlflow

    try:
        return mlflow.models.get_model_info(uri)
    except Exception as e:  # MlflowException, OSError, ...: all say "there is no model there"
        if access.refusal(e):
            raise
        raise NotFound(_first_line(e)) from None


def run_of_model(uri: str) -> str | None:
    """The run that logged the model at `uri` (None: a local path without a run, or no model there)."""
    try:
        return model_info(uri).run_id or None
    except NotFound:
        return None


def run_config(run_id: str) -> DictConfig | None:
    """The config a run logged (config/config.yaml), None where it has none."""
    from omegaconf import DictConfig, OmegaConf

    text = run_text(run_id, "config/config.yaml")  # none: logged another way
    if text is None:
        return None
    cfg = OmegaConf.create(text)
    assert isinstance(cfg, DictConfig), f"{run_id}: its config is not a mapping"
    return cfg


def run_text(run_id: str, path: str) -> str | None:
    """The text of a run's artifact at `path` (None: the run has none there, or the store would not give
    it)."""
    import mlflow

    try:
        return mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")
    except Exception as e:
        if access.refusal(e):
            raise
        return None


def load_keras_model(uri: str) -> keras.Model:
    """The Keras model at `uri`, loaded (Keras and TensorFlow load here)."""
    import mlflow

    try:
        return mlflow.keras.load_model(uri)
    except Exception as e:
        if access.refusal(e):
            raise
        raise NotFound(_first_line(e)) from None


def pinned(uri: str) -> str:
    """A registered model's URI by version: models:/name@alias and models:/name/latest move, the version
    does not (any other URI as it is)."""
    import mlflow

    ref = uri.removeprefix("models:/")
    if ref == uri or not ("@" in ref or ref.endswith("/latest")):
        return uri
    client = mlflow.MlflowClient()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return f"models:/{name}/{client.get_model_version_by_alias(name, alias).version}"
    name = ref.removesuffix("/latest")
    versions = client.search_model_versions(f"name='{name}'")
    return f"models:/{name}/{max(int(v.version) for v in versions)}"


def experiment_id(store: str, name: str) -> str | None:
    """The id of the experiment `name` in `store` (None: there is none yet); the store becomes the
    process's."""
    import mlflow

    mlflow.set_tracking_uri(store)
    experiment = mlflow.get_experiment_by_name(name)
    return None if experiment is None else str(experiment.experiment_id)


def use_tracking_uri(store: str) -> None:
    """Make `store` the process's tracking store (where runs are read and written by id)."""
    import mlflow

    mlflow.set_tracking_uri(store)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Metrics on the active run, in one synchronous write."""
    import mlflow

    mlflow.log_metrics(metrics, step=step)


def last_logged_step(metric: str) -> int:
    """The last step at which the active run holds `metric` (-1: none)."""
    import mlflow

    active = mlflow.active_run()
    assert active is not None, "called inside the run"
    history = mlflow.MlflowClient().get_metric_history(active.info.run_id, metric)
    return max((m.step for m in history), default=-1)


def log_figure_to(run_id: str, figure: Figure, path: str) -> None:
    """A figure as an artifact of a run that need not be active (a sweep's parent)."""
    import mlflow

    mlflow.MlflowClient().log_figure(run_id, figure, path)


def search_runs(filter_string: str, newest_first: bool = False) -> list[Run]:
    """Every run of every experiment that an MLflow search filter matches, oldest first (or newest);
    NotFound with the store's words for a filter it cannot read."""
    import mlflow

    try:
        return mlflow.search_runs(
            search_all_experiments=True,
            filter_string=filter_string,
            order_by=[f"start_time {'DESC' if newest_first else 'ASC'}"],
            output_format="list",
        )
    except mlflow.exceptions.MlflowException as e:
        if access.refusal(e):
            raise
        raise NotFound(_first_line(e)) from None


def log_to(
    run_id: str, artifacts: list[tuple[Path, str]] | None = None, metrics: dict[str, float] | None = None
) -> None:
    """Artifacts (a file, or a directory's files, into the run's folder) and metrics on a run that need not
    be active (the run that logged a model, for its exports)."""
    import mlflow

    client = mlflow.MlflowClient()
    for path, folder in artifacts or []:
        if path.is_dir():
            client.log_artifacts(run_id, str(path), folder)
        else:
            client.log_artifact(run_id, str(path), folder)
    for key, value in (metrics or {}).items():
        client.log_metric(run_id, key, value)


def get_run(run_id: str) -> Run:
    """The run with this id; NotFound (with the store's address) when the store has none."""
    import mlflow

    try:
        return mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException as e:
        if access.refusal(e):
            raise
        raise NotFound(f"no run {run_id!r} in {mlflow.get_tracking_uri()}") from None


def metric_history(run_id: str, key: str) -> list[Metric]:
    """Every value a run logged for a metric, by step."""
    import mlflow

    return mlflow.MlflowClient().get_metric_history(run_id, key)


def set_tag(run_id: str, key: str, value: str) -> None:
    """A tag on a run that need not be active (a sweep's parent)."""
    import mlflow

    mlflow.MlflowClient().set_tag(run_id, key, value)
