"""Everything that talks to MLflow: the store, runs and their end state, params, metrics, artifacts, models.

Training code hands results here; it does not call MLflow itself.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
import traceback
import warnings
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

import mlflow
import numpy as np
from omegaconf import DictConfig, OmegaConf

from src import UserError, access
from src.data import IMAGE_SHAPE, NUM_CLASSES, Digits
from src.evaluate import Evaluation

log = logging.getLogger(__name__)

DEFAULT_STORE = Path("mlruns")
MODEL_ARTIFACT = "model"
CHAMPION = "champion"


def resolve_uri(uri: str | None) -> str:
    """The tracking URI: the configured one, else a SQLite store in ./mlruns (absolute, so chdir-proof)."""
    if uri:
        access.check_uri(uri)
        return uri
    store = DEFAULT_STORE.absolute()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def artifact_location(uri: str) -> str | None:
    """Artifacts of a SQLite store live in artifacts/ beside the database; other stores choose their own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).absolute().parent / "artifacts").as_uri()
    return None


def use_store(cfg: DictConfig, create: bool = True) -> str | None:
    """Point MLflow at the configured store and experiment (created if new); returns the experiment id.

    With create=False only the store is chosen: reading from it writes nothing.
    """
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
                experiment_id = mlflow.get_experiment_by_name(cfg.experiment).experiment_id
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

    lock = Path(uri.removeprefix("sqlite:///")).absolute().with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    if run_id:
        active = mlflow.start_run(run_id=run_id)
        mlflow.set_tag("resumed", "true")
    else:
        tags = {**_git_tags(), **(tags or {})}
        active = mlflow.start_run(run_name=run_name, parent_run_id=parent_run_id, tags=tags)
    try:
        yield active
    except KeyboardInterrupt:
        mlflow.set_tag("error", "interrupted (SIGINT/SIGTERM)")
        mlflow.end_run("KILLED")
        raise
    except BaseException as e:
        mlflow.set_tag("error", f"{type(e).__name__}: {e}"[:5000])
        mlflow.set_tags(getattr(e, "tags", {}))
        if getattr(e, "run_status", "FAILED") == "FAILED":  # a trial the pruner stopped ends KILLED
            mlflow.log_text(traceback.format_exc(), "error/traceback.txt")
        mlflow.end_run(getattr(e, "run_status", "FAILED"))
        raise
    else:
        mlflow.end_run("FINISHED")


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


def _git_tags() -> dict[str, str]:
    """The commit the code ran from (and whether it had local changes), when run from a git checkout."""
    root = Path(__file__).resolve().parents[1]
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
    """The composed config as dotted keys (backbone.name, top.layers.1.units, ...)."""
    flat: dict[str, str] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        elif isinstance(node, list):
            if not node:
                flat[prefix[:-1]] = "[]"
            for i, value in enumerate(node):
                walk(value, f"{prefix}{i}.")
        else:
            flat[prefix[:-1]] = str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
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
    from src import environment

    mlflow.set_tags({f"env.{key}": value for key, value in environment.describe().items()})
    mlflow.log_text(environment.requirements(), "environment/requirements.txt")


def log_model_size(sizes: Mapping[str, int]) -> None:
    mlflow.log_params({f"model.{key}": value for key, value in sizes.items()})


def log_distribution(replicas: int, devices: list[str]) -> None:
    """How the run was spread (training.strategy says how): its number of replicas and their devices."""
    mlflow.log_param("distribute.replicas", replicas)
    mlflow.set_tag("distribute.devices", ", ".join(devices))


def log_dataset(digits: Digits) -> None:
    """Name, source, sizes and digest of the data, as MLflow dataset inputs and tags."""
    for context, x, y in (
        ("training", digits.x_train, digits.y_train),
        ("validation", digits.x_val, digits.y_val),
        ("test", digits.x_test, digits.y_test),
    ):
        with warnings.catch_warnings():  # a local path "can be interpreted in multiple ways"
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_numpy(
                x, targets=y, source=digits.source, name=f"{digits.name}-{context}"
            )
        _retry_races(mlflow.log_input, dataset, context=context)
    mlflow.set_tags(
        {
            "data.name": digits.name,
            "data.source": digits.source,
            "data.digest": digits.digest,
            **{f"data.{split}_size": str(size) for split, size in digits.sizes().items()},
        }
    )


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


def log_logging_time(seconds: float) -> None:
    mlflow.log_metric("logging_time_s", seconds)


def log_fallbacks(fallbacks: list[str]) -> None:
    mlflow.set_tag("fallback", str(bool(fallbacks)).lower())
    for fallback in fallbacks:
        kind, _, message = fallback.partition(": ")
        mlflow.set_tag(f"fallback.{kind}", message)


_FIRST_STEP_SEEN = False


def last_logged_epoch() -> int:
    """The last epoch whose metrics the active run holds (-1: none), for a resumed run."""
    run_id = mlflow.active_run().info.run_id
    return max((m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "loss")), default=-1)


def epoch_logger(logged_through: int = -1):
    """A Keras callback logging every epoch's metrics, learning rate and duration at step = epoch index.

    Each epoch is logged in one synchronous write (a few milliseconds on SQLite): MLflow's asynchronous
    logger cost more, since each flush (after training, at the run's end) waited out its one-second poll
    of an empty queue, about 3 s of a 20 s run. The first training step's time
    since the process started is logged as `startup_s`. A loss that is no longer finite stops training.
    Epochs up to `logged_through` (a resumed run's last logged epoch) are not logged again.
    """
    import keras

    import src

    class EpochLogger(keras.callbacks.Callback):
        started = None

        def on_train_batch_begin(self, batch, logs=None):
            global _FIRST_STEP_SEEN
            if self.started is None:
                self.started = time.time()
                if not _FIRST_STEP_SEEN:  # the command's first training (not a later job of a sweep)
                    _FIRST_STEP_SEEN = True
                    log.info("first training step %.1f s after start", self.started - src.STARTED)
                    mlflow.log_metric("startup_s", self.started - src.STARTED)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if epoch <= logged_through:
                # resumed from a checkpoint older than the last logged epoch (interrupted between the
                # two): this epoch ran again, its first metrics stand
                return
            metrics = {k: float(v) for k, v in (logs or {}).items()}
            learning_rate = self.model.optimizer.learning_rate
            metrics.setdefault("learning_rate", float(keras.ops.convert_to_numpy(learning_rate)))
            metrics["epoch_time_s"] = time.perf_counter() - self.epoch_start
            start = time.perf_counter()
            mlflow.log_metrics(metrics, step=epoch)
            log.debug("epoch %d logged in %.3f s", epoch, time.perf_counter() - start)
            if not np.isfinite(metrics.get("loss", 0.0)):
                # checked once per epoch, not per batch: a per-batch check would sync every step
                self.model.stop_training = True

    return EpochLogger()


def log_evaluation(
    evaluation: Evaluation, images: np.ndarray | None = None, prefix: str | None = None
) -> None:
    """A split's metrics, confusion matrix (PNG and CSV) and, given the images, its misclassified digits."""
    from src import plots

    split = evaluation.split
    prefix = f"{split}_" if prefix is None else prefix
    metrics = {f"{prefix}accuracy": evaluation.accuracy, f"{prefix}loss": evaluation.loss}
    if split == "test":
        metrics.update({f"test_{key}": value for key, value in evaluation.per_class().items()})
    mlflow.log_metrics(metrics)
    counts = evaluation.confusion()
    header = "true\\predicted," + ",".join(str(c) for c in range(NUM_CLASSES))
    rows = [f"{c}," + ",".join(str(n) for n in counts[c]) for c in range(NUM_CLASSES)]
    mlflow.log_text("\n".join([header, *rows]) + "\n", f"confusion_matrix/{split}.csv")
    figure = plots.confusion_figure(
        counts, f"{split}: accuracy {evaluation.accuracy:.4f} (n={len(evaluation.labels)})"
    )
    mlflow.log_figure(figure, f"confusion_matrix/{split}.png")
    plots.plt.close(figure)
    if images is not None:
        figure = plots.misclassified_figure(images, evaluation.labels, evaluation.probabilities)
        mlflow.log_figure(figure, f"misclassified/{split}.png")
        plots.plt.close(figure)


def log_calibration(temperature: float, validation: Evaluation, test: Evaluation) -> None:
    """The fitted temperature, the 15-bin expected calibration error of validation and test before and
    after it (`val_ece_before`, `val_ece`, ...) and reliability_diagram.png."""
    from src import calibration, plots

    curves = {}
    metrics = {"temperature": temperature}
    for prefix, evaluation in (("val", validation), ("test", test)):
        before = calibration.scale(evaluation.probabilities, 1.0 / temperature)
        metrics[f"{prefix}_ece_before"] = calibration.expected_calibration_error(before, evaluation.labels)
        metrics[f"{prefix}_ece"] = calibration.expected_calibration_error(
            evaluation.probabilities, evaluation.labels
        )
        curves[evaluation.split] = {
            "before": calibration.reliability(before, evaluation.labels),
            f"after (T={temperature:.2f})": calibration.reliability(
                evaluation.probabilities, evaluation.labels
            ),
        }
    mlflow.log_metrics(metrics)
    figure = plots.reliability_figure(curves, metrics)
    mlflow.log_figure(figure, "reliability_diagram.png")
    plots.plt.close(figure)


def log_training(seconds: float) -> None:
    """Training time, epochs run and the learning curves, from the run's own per-epoch metrics
    (complete even when the run was resumed)."""
    from src import plots

    client = mlflow.MlflowClient()
    run_id = mlflow.active_run().info.run_id
    history = {
        key: [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy")
    }
    mlflow.log_metrics({"training_time_s": seconds, "epochs_run": len(history["loss"])})
    figure = plots.learning_curves_figure(dict(history))
    mlflow.log_figure(figure, "learning_curves.png")
    plots.plt.close(figure)


def model_signature():
    """What the logged model takes and gives: raw MNIST digits in, 10 class probabilities out."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, *IMAGE_SHAPE))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, NUM_CLASSES))]),
    )


def log_model(model, registered_model: str | None, reader_model: str | None = None) -> str | None:
    """Log the Keras model with its signature (and summary) and register it; returns the new version.

    With `reader_model`, the reading model around it (`src.reader_model`: pictures in, numbers out) is
    logged too and registered under that name, tagged with the classifier version it wraps."""
    import keras
    import PIL
    import scipy
    import tensorflow as tf

    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line), expand_nested=True)
    mlflow.log_text("\n".join(lines), "model_summary.txt")
    requirements = [
        f"tensorflow=={tf.__version__}",
        f"keras=={keras.__version__}",
        f"numpy=={np.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]
    info = mlflow.keras.log_model(
        model, name=MODEL_ARTIFACT, signature=model_signature(), pip_requirements=requirements
    )
    if not registered_model:
        return None
    version = str(_retry_races(mlflow.register_model, info.model_uri, registered_model).version)
    mlflow.set_tag("registered_model", f"{registered_model}/{version}")
    log.info("registered %s version %s", registered_model, version)
    if reader_model:
        from src.reader_model import log_reader

        reader = log_reader(
            model, [*requirements, f"pillow=={PIL.__version__}", f"scipy=={scipy.__version__}"]
        )
        wraps = {"classifier": f"{registered_model}/{version}", "classifier_version": version}
        registered = _retry_races(mlflow.register_model, reader.model_uri, reader_model, tags=wraps)
        mlflow.set_tag("registered_reader", f"{reader_model}/{registered.version}")
        log.info("registered %s version %s (reads with %s)", reader_model, registered.version, version)
    return version


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
_RACES = ("UNIQUE constraint failed", "duplicate key value", "database is locked", "already exists")


def _retry_races(call, *args, attempts: int = 6, **kwargs):
    """Retry a store write that lost a race with a parallel job (MLflow's check-then-insert)."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except mlflow.exceptions.MlflowException as e:
            if attempt == attempts - 1 or not any(race in str(e) for race in _RACES):
                raise
            log.info("store busy (%s); retrying", str(e).splitlines()[0][:120])
            time.sleep(0.2 * 2**attempt)


def version_scores(registered_model: str, metric: str) -> dict[str, float]:
    """Each registered version's `metric` (from its run), for the versions whose run has a finite one."""
    client = mlflow.MlflowClient()
    scores = {}
    for version in client.search_model_versions(f"name='{registered_model}'"):
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
        _retry_races(client.set_registered_model_alias, registered_model, CHAMPION, target)
    raise RuntimeError(f"the alias {CHAMPION} of {registered_model} did not settle in {rounds} rounds")


def follow_champion(reader_model: str, registered_model: str, champion: str) -> None:
    """Point `reader_model`'s alias `champion` at the reader of `registered_model`'s champion version."""
    reader = reader_version(reader_model, registered_model, champion)
    if reader is not None:
        _retry_races(mlflow.MlflowClient().set_registered_model_alias, reader_model, CHAMPION, reader)


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
            **_git_tags(),
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
