"""The model registry: a trained model logged with its signature and registered (with its reading model,
logged by its flavour: src/reading/reader_model.py, handed in as `log_reader`), and the `champion` alias
that only a better validation score moves."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
from omegaconf import DictConfig

from src import UserError
from src.tracking.store import retry_races

if TYPE_CHECKING:
    import keras
    from mlflow.models import ModelSignature

log = logging.getLogger(__name__)


MODEL_ARTIFACT = "model"
CHAMPION = "champion"
# what logs a classifier's reading model in the active run, given its pip requirements; returns its
# ModelInfo (src/reading/reader_model.py: log_reader, with the classifier and its digit score)
LogReader = Callable[[list[str]], Any]


def model_signature(shapes: tuple[tuple[int, ...], int]) -> ModelSignature:
    """What the logged model takes and gives: raw digits of shape shapes[0] (uint8) in, shapes[1] class
    probabilities out."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    image_shape, classes = shapes
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, *image_shape))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, classes))]),
    )


def requirements() -> list[str]:
    """The classifier's pip requirements: the versions this process runs."""
    import keras
    import tensorflow as tf

    return [
        f"tensorflow=={tf.__version__}",
        f"keras=={keras.__version__}",
        f"numpy=={np.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]


def log_model(
    model: keras.Model,
    registered_model: str | None,
    shapes: tuple[tuple[int, ...], int],
    reader_model: str | None = None,
    metadata: dict | None = None,
    log_reader: LogReader | None = None,
) -> str | None:
    """Log the Keras model with its signature (`model_signature(shapes)`), summary and `metadata` (its
    digit score), and register it; returns the new version.

    With `reader_model` and `log_reader`, the reading model around it (pictures in, numbers out) is
    logged too and registered under that name, tagged with the classifier version it wraps."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line), expand_nested=True)
    mlflow.log_text("\n".join(lines), "model_summary.txt")
    info = mlflow.keras.log_model(
        model,
        name=MODEL_ARTIFACT,
        signature=model_signature(shapes),
        pip_requirements=requirements(),
        metadata=metadata or None,
    )
    if not registered_model:
        return None
    version = str(retry_races(mlflow.register_model, info.model_uri, registered_model).version)
    mlflow.set_tag("registered_model", f"{registered_model}/{version}")
    log.info("registered %s version %s", registered_model, version)
    if reader_model and log_reader:
        registered = _log_reader(log_reader, registered_model, version, reader_model)
        mlflow.set_tag("registered_reader", f"{reader_model}/{registered}")
    return version


def _log_reader(log_reader: LogReader, registered_model: str, version: str, reader_model: str) -> str:
    """Log the reading model (`log_reader`) around `registered_model` version `version` and register it
    under `reader_model`, tagged with the version it wraps; returns its version."""
    import PIL
    import scipy

    needs = [*requirements(), f"pillow=={PIL.__version__}", f"scipy=={scipy.__version__}"]
    reader = log_reader(needs)
    wraps = {"classifier": f"{registered_model}/{version}", "classifier_version": version}
    registered = str(retry_races(mlflow.register_model, reader.model_uri, reader_model, tags=wraps).version)
    log.info("registered %s version %s (reads with %s)", reader_model, registered, version)
    return registered


def register_reader(
    log_reader: LogReader, run_id: str, registered_model: str, reader_model: str
) -> str | None:
    """The reading model of the classifier that run `run_id` registered (logged by `log_reader`, with the
    digit score fitted on its first read): registered under `reader_model` (unless one wraps that version
    already), tagged on the run, and given the alias `champion` if its classifier has it. Returns the
    reader's version (None: the run registered no classifier, or the store refused)."""
    client = mlflow.MlflowClient()
    try:
        found = client.search_model_versions(f"name = '{registered_model}' and run_id = '{run_id}'")
        if not found:
            return None
        version = str(max(int(v.version) for v in found))
        existing = reader_version(reader_model, registered_model, version)
        if existing is not None:
            return existing
        registered = _log_reader(log_reader, registered_model, version, reader_model)
        client.set_tag(run_id, "registered_reader", f"{reader_model}/{registered}")
        if champion_version(registered_model) == version:
            follow_champion(reader_model, registered_model, version)
        return registered
    except mlflow.exceptions.MlflowException as e:  # a login that may only read
        log.warning("reading model: not registered for run %s (%s)", run_id, e)
        return None


def reader_version(reader_model: str, registered_model: str, version: str) -> str | None:
    """The version of `reader_model` that wraps `registered_model` version `version` (None: none)."""
    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{reader_model}'")
    except mlflow.exceptions.MlflowException:
        return None
    wrapping = [v for v in versions if v.tags.get("classifier") == f"{registered_model}/{version}"]
    return max((v.version for v in wrapping), key=int, default=None)


# A store write that lost a race with a parallel client: SQLite's and PostgreSQL's words for a key
# inserted twice (MLflow checks, then inserts), and SQLite's lock.
def version_scores(registered_model: str, metric: str) -> dict[str, float]:
    """Each registered version's `metric` (from its run), for the versions whose run has a finite one."""
    client = mlflow.MlflowClient()
    scores = {}
    for version in client.search_model_versions(f"name='{registered_model}'"):
        if version.run_id is None:  # registered from a path, not a run: no score
            continue
        value = client.get_run(version.run_id).data.metrics.get(metric)
        if value is not None and np.isfinite(value):
            scores[str(version.version)] = value
    return scores


def best_version(
    registered_model: str, metric: str, mode: str = "max", candidates: Collection[str] | None = None
) -> str | None:
    """The version best by `metric` among `candidates` (None: all versions; ties: the older version)."""
    return _best(version_scores(registered_model, metric), mode, candidates)


def _best(scores: dict[str, float], mode: str, candidates: Collection[str] | None) -> str | None:
    eligible = [v for v in scores if candidates is None or v in candidates]
    sign = 1 if mode == "max" else -1
    return min(eligible, key=lambda v: (-sign * scores[v], int(v)), default=None)


def beats(new: float, old: float | None, mode: str = "max", min_delta: float = 0.0) -> bool:
    """Whether a score `new` replaces `old`: better, and by at least min_delta (no old score: yes)."""
    if old is None:
        return True
    gain = new - old if mode == "max" else old - new
    return gain > 0 and gain >= min_delta


def champion_version(registered_model: str) -> str | None:
    """The version the alias `champion` points at (None: no alias yet)."""
    aliases = mlflow.MlflowClient().get_registered_model(registered_model).aliases
    return str(aliases[CHAMPION]) if CHAMPION in aliases else None


def promote_champion(
    registered_model: str,
    metric: str,
    mode: str = "max",
    min_delta: float = 0.0,
    candidates: Collection[str] | None = None,
    rounds: int = 20,
    reader_model: str | None = None,
) -> str | None:
    """Point the alias `champion` at the best version by `metric` among `candidates` (None: all), if it
    beats the current champion by at least `min_delta`; returns the champion. With `reader_model`, that
    model's alias `champion` follows: it points at the reader of the champion version.

    Safe when several trainings and sweeps promote at once, on any store: the alias is set, then read
    back with the versions, and set again until the two agree. A promotion that decided on an older list
    of versions and wrote last is mended by its own check, so the alias ends where promoting one by one
    would have put it; a write that collided with another's first write of the alias is retried.
    """
    client = mlflow.MlflowClient()
    for _ in range(rounds):
        scores = version_scores(registered_model, metric)
        best = _best(scores, mode, candidates)
        current = champion_version(registered_model)
        target = best
        if best is None or (current and not beats(scores[best], scores.get(current), mode, min_delta)):
            target = current
        if target is None or current == target:
            if target and reader_model:
                follow_champion(reader_model, registered_model, target)
            return target
        retry_races(client.set_registered_model_alias, registered_model, CHAMPION, target)
    raise RuntimeError(f"the alias {CHAMPION} of {registered_model} did not settle in {rounds} rounds")


def follow_champion(reader_model: str, registered_model: str, champion: str) -> None:
    """Point `reader_model`'s alias `champion` at the reader of `registered_model`'s champion version."""
    reader = reader_version(reader_model, registered_model, champion)
    if reader is not None:
        retry_races(mlflow.MlflowClient().set_registered_model_alias, reader_model, CHAMPION, reader)


def register(
    model: keras.Model,
    tracking: DictConfig,
    shapes: tuple[tuple[int, ...], int],
    promote: bool = True,
    metadata: dict | None = None,
    log_reader: LogReader | None = None,
) -> str | None:
    """Log the trained model (with its `metadata`: its digit score) in the active run, register it (and,
    with `log_reader`, its reading model) as configured, and with `promote`, offer it the champion alias;
    the time it took is logged as logging_time_s."""
    from src.tracking.runs import log_logging_time

    start = time.perf_counter()
    reader_model = tracking.get("reader_model") if log_reader else None
    version = log_model(model, tracking.registered_model, shapes, reader_model, metadata, log_reader)
    if version and promote:
        promote_champion(
            tracking.registered_model, **tracking.champion, candidates=[version], reader_model=reader_model
        )
    log_logging_time(time.perf_counter() - start)
    return version


def load_classifier(uri: str, tracking_uri: str | None = None) -> keras.Model:
    """The Keras classifier at an MLflow model URI (models:/name@alias, models:/name/3, runs:/id/model),
    from the store `tracking_uri` names (null: MLFLOW_TRACKING_URI, else ./mlruns); UserError in one
    line when the URI names no classifier or the server refuses."""
    return load_reading_classifier(uri, tracking_uri)[0]


def load_reading_classifier(uri: str, tracking_uri: str | None = None) -> tuple[keras.Model, dict]:
    """`load_classifier`, with the model's metadata (where a digit score is kept; empty: it has none)."""
    import mlflow

    from src.tracking import access
    from src.tracking.store import resolve_uri

    store = resolve_uri(tracking_uri)
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    access.check_login(store)  # before the model's loading imports TensorFlow
    try:
        # what the URI names, before the seconds that loading Keras takes: a wrong URI fails fast
        info = mlflow.models.get_model_info(uri)
        if "keras" not in info.flavors:
            raise UserError(
                f"model: {uri} is not a Keras classifier (its flavors: {', '.join(info.flavors)}): give a "
                "classifier, e.g. models:/handwritten-digits@champion (reading models are for serving)"
            )
        return mlflow.keras.load_model(uri), dict(info.metadata or {})
    except UserError:
        raise
    except Exception as e:  # MlflowException, OSError, ...: all say "this URI does not give a model"
        refused = access.refusal(e, store)
        if refused:  # unless the server would not let us see it
            raise UserError(refused) from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"model: cannot load {uri!r} from {store}: {first}") from None
