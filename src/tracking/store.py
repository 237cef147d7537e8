"""The MLflow store: where it is (the configured URI, else ./mlruns), its experiment, and the lock that
lets processes of one machine share a SQLite store.

MLflow is imported where it is used, not here: finding the store's address must not cost the 2-3 s of
importing MLflow, which a training does in a thread while its first epoch runs (src/tracking/opening.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig

from src import UserError
from src.tracking import access

log = logging.getLogger(__name__)


DEFAULT_STORE = Path("mlruns")


def resolve_uri(uri: str | None) -> str:
    """The tracking URI: the configured one, else a SQLite store in ./mlruns (absolute, so chdir-proof)."""
    if uri:
        access.check_uri(uri)
        return uri
    store = DEFAULT_STORE.absolute()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def _sqlite_file(uri: str) -> Path:
    return Path(uri.removeprefix("sqlite:///")).absolute()


def check_folder(uri: str) -> None:
    """A SQLite store's folder exists or can be made: a mistyped tracking.uri is refused before anything
    trains (the run is opened while the first epoch trains)."""
    if not uri.startswith("sqlite:///"):
        return
    folder = _sqlite_file(uri).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"tracking.uri: cannot make the store's folder {folder}: {e.strerror}") from None


def artifact_location(uri: str) -> str | None:
    """Artifacts of a SQLite store live in artifacts/ beside the database; other stores choose their own."""
    if uri.startswith("sqlite:///"):
        return (_sqlite_file(uri).parent / "artifacts").as_uri()
    return None


def use_store(cfg: DictConfig, create: bool = True) -> str | None:
    """Point MLflow at the configured store and experiment (created if new); returns the experiment id.

    With create=False only the store is chosen: reading from it writes nothing.
    """
    import mlflow

    uri = resolve_uri(cfg.uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if not create:
        return None
    with store_lock(uri):  # the first access creates (or migrates) the database
        experiment = mlflow.get_experiment_by_name(cfg.experiment)
        if experiment is None:
            try:
                experiment_id = mlflow.create_experiment(
                    cfg.experiment,
                    artifact_location=artifact_location(uri),
                    tags={"mlflow.experimentKind": "custom_model_development"},  # the UI opens on its runs
                )
            except mlflow.exceptions.MlflowException as e:
                # another client of the same server created it first
                if "RESOURCE_ALREADY_EXISTS" not in str(e.error_code) and "already exists" not in str(e):
                    raise
                created = mlflow.get_experiment_by_name(cfg.experiment)
                assert created is not None, "the experiment that already exists"
                experiment_id = created.experiment_id
        else:
            experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Processes of one machine sharing a SQLite store take turns to create or migrate it and its
    experiment (MLflow's own start-up races: "duplicate column name", "database is locked")."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    lock = _sqlite_file(uri).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


T = TypeVar("T")
_RACES = ("UNIQUE constraint failed", "duplicate key value", "database is locked", "already exists")


def retry_races(call: Callable[..., T], *args: Any, attempts: int = 6, **kwargs: Any) -> T:
    """Retry a store write that lost a race with a parallel job (MLflow's check-then-insert)."""
    import mlflow

    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except mlflow.exceptions.MlflowException as e:
            if attempt == attempts - 1 or not any(race in str(e) for race in _RACES):
                raise
            log.info("store busy (%s); retrying", str(e).splitlines()[0][:120])
            time.sleep(0.2 * 2**attempt)
    raise ValueError(f"attempts: {attempts} (at least 1)")


def create_tables(backend: str, artifact_root: str) -> None:
    """MLflow's tables in a database (created, or migrated to this MLflow's schema), as a tracking server
    will find them."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(backend, artifact_root)
