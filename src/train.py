"""Train, evaluate, log and register one model: python -m src.train [overrides].

Reads top to bottom: data -> model -> fit -> evaluate -> log. Heavy imports (TensorFlow, MLflow) happen
after Hydra has composed and checked the config, so a typo fails in about a second.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from src import UserError

log = logging.getLogger("src.train")


class TrainingDiverged(UserError):
    """The loss became NaN or infinite: the run fails and nothing is registered."""


def train(
    cfg: DictConfig, hydra_output_dir: str | None = None, sweep: dict | None = None
) -> dict[str, float]:
    """One run in the tracking store (a child of the sweep's parent run in a sweep); returns its scores.

    A tracking server's refusal (no login, a wrong one, no permission) is a UserError; the login is
    checked before the heavy work begins.
    """
    from src import access, data, distribute, tracking

    access.check_login(tracking.resolve_uri(cfg.tracking.uri))
    digits = data.load_digits(cfg.data, strict=cfg.strict)  # a bad data file fails before TensorFlow loads
    if cfg.training.resume:  # so does a run that cannot be resumed, before anything is written to the store
        tracking.use_store(cfg.tracking, create=False)
        tracking.check_resumable(cfg.training.resume, _checkpoint_dir(cfg, cfg.training.resume))
    if not cfg.training.enabled:  # and a registered model that is not there
        _registered_uri(cfg)
    distribution = distribute.make(cfg.training)  # before anything else touches TensorFlow's devices
    import keras

    previous = keras.mixed_precision.global_policy()
    try:
        with access.refusals(), distribution.strategy.scope():
            return _train(cfg, digits, distribution, hydra_output_dir, sweep or {})
    finally:  # the precision chosen for this run does not leak into what the process builds next
        keras.mixed_precision.set_global_policy(previous)


def _train(
    cfg: DictConfig, digits, distribution, hydra_output_dir: str | None, sweep: dict
) -> dict[str, float]:
    import keras

    from src import calibration, features, model, precision, tracking
    from src.evaluate import evaluate

    keras.utils.set_random_seed(cfg.training.seed)
    set_determinism(cfg.training.deterministic)
    requested = cfg.training.precision
    if requested == "auto" and not cfg.training.enabled:
        requested = "float32"  # nothing trains: the registered model computes as it was saved
    policy, chosen_by = precision.choose(requested, cfg.training.precision_probe)
    model.set_precision(policy)
    log.info("data: %s %s from %s", digits.name, digits.sizes(), digits.source)
    if cfg.training.enabled:
        network = model.build_model(cfg, strict=cfg.strict)
        net, fallbacks = network.model, digits.fallbacks + network.fallbacks
    else:
        net, fallbacks = _load_registered(cfg), digits.fallbacks
    _announce(fallbacks)

    resume = cfg.training.resume  # checked in train(), before TensorFlow loads
    tracking.use_store(cfg.tracking)
    run_name = cfg.tracking.run_name or sweep.get("run_name") or cfg.backbone.name
    tags = {**cfg.tracking.tags, **sweep.get("tags", {})}
    with tracking.run(run_name, sweep.get("parent_run_id"), tags, run_id=resume) as active:
        tracking.log_config(cfg, hydra_output_dir)
        tracking.log_environment()
        tracking.log_model_size(model.count_params(net))
        tracking.log_distribution(distribution.replicas, distribution.devices)
        tracking.log_dataset(digits)
        tracking.log_fallbacks(fallbacks)
        tracking.log_precision(policy, chosen_by)

        # what gets scored: the whole model on digits (the fast twin of a frozen backbone's), or the top
        # on backbone features (cached or echoed)
        scorer = network.trainee if cfg.training.enabled else net
        temperature = None
        inputs = {"train": digits.x_train, "validation": digits.x_val, "test": digits.x_test}
        inputs = {split: x[..., None] for split, x in inputs.items()}
        if cfg.training.enabled:
            route, why = features.route(cfg, network)
            log.info("training route: %s (%s)", route, why)
            tracking.log_route(route, why)
            augment = augmentation(cfg)
            if route != "exact":
                inputs, source, seconds, test_seconds = features.backbone_features(
                    network,
                    digits,
                    cfg.training.feature_cache_dir,
                    batch_size=max(256, cfg.training.batch_size),
                    augment=augment if route == "echoed" else None,
                    views=cfg.training.echo_views,
                    echo={
                        "augmentation": OmegaConf.to_container(cfg.augmentation.layers),
                        "views": cfg.training.echo_views,
                        "seed": cfg.training.seed,
                    },
                )
                scorer = network.top
                tracking.log_feature_cache(source, seconds, test_seconds)
            else:
                tracking.log_feature_cache(f"off: {why}", None)
            checkpoints = _checkpoint_dir(cfg, active.info.run_id) if cfg.training.checkpoints else None
            pruner = None
            if "pruning" in sweep:  # a search's trial: the pruner may stop it after any epoch
                from src.search import pruning_callback

                pruner = pruning_callback(**sweep["pruning"], monitor="val_accuracy")
            history, seconds = fit(
                scorer,
                inputs,
                digits,
                cfg,
                route=route,
                augment=augment,
                checkpoints=checkpoints,
                extra_callbacks=[pruner] if pruner else [],
            )
            if pruner and pruner.pruned:
                from src.sweep import TrialPruned

                tracking.log_training(seconds)
                raise TrialPruned(pruner.pruned)
            losses = history.get("loss", [])
            if losses and not all(map(math.isfinite, losses)):
                raise TrainingDiverged(
                    f"the loss became {losses[-1]} at epoch {len(losses)}: training stopped and nothing "
                    "registered (try a smaller training.optimizer.learning_rate)"
                )
            tracking.log_training(seconds)
            # the training split is scored on a fixed sample (training.train_eval_sample digits): its
            # scores only show how far training and validation drift apart
            sample = evaluation_sample(len(digits.y_train), cfg.training.train_eval_sample)
            if route == "cached":
                train_scores = evaluate(scorer, inputs["train"][sample], digits.y_train[sample], "train")
            else:  # the echoed features are of augmented digits: score the digits themselves
                x = digits.x_train[sample][..., None]
                train_scores = evaluate(network.trainee, x, digits.y_train[sample], "train")
            tracking.log_evaluation(train_scores, prefix="final_train_")
            validation = evaluate(scorer, inputs["validation"], digits.y_val, "validation")
            temperature = calibrate(network, validation) if cfg.training.calibrate else None
            if temperature:
                validation.probabilities = calibration.scale(validation.probabilities, temperature)
            tracking.log_evaluation(validation, prefix="final_val_")

        test = evaluate(scorer, inputs["test"], digits.y_test, "test")
        tracking.log_evaluation(test, images=digits.x_test)
        if cfg.training.enabled and temperature:
            tracking.log_calibration(temperature, validation, test)
        log.info("test accuracy %.4f, test loss %.4f", test.accuracy, test.loss)
        if cfg.training.enabled:
            start = time.perf_counter()
            reader = cfg.tracking.get("reader_model")
            version = tracking.log_model(net, cfg.tracking.registered_model, reader)
            if version and not sweep:  # a sweep promotes its best configuration at its end
                tracking.promote_champion(
                    cfg.tracking.registered_model, **cfg.tracking.champion, candidates=[version],
                    reader_model=reader,
                )  # fmt: skip
            tracking.log_logging_time(time.perf_counter() - start)
    _announce(fallbacks)
    scores = {"test_accuracy": test.accuracy, "test_loss": test.loss}
    if cfg.training.enabled:
        scores["val_accuracy"] = validation.accuracy
    return scores


def calibrate(network, validation) -> float | None:
    """Fit a temperature on the validation split and fold it into the model (None: not possible, said
    in the log: no validation digits, or a top that does not end in a softmax Dense layer)."""
    from src import calibration

    layer = calibration.softmax_layer(network.top)
    if layer is None or len(validation.labels) == 0:
        log.warning(
            "calibration: skipped (%s)",
            "no validation digits" if layer else "the top does not end in a softmax Dense layer",
        )
        return None
    temperature = calibration.fit_temperature(validation.probabilities, validation.labels)
    calibration.fold(layer, temperature)
    log.info(
        "calibration: temperature %.3f fitted on %d validation digits", temperature, len(validation.labels)
    )
    return temperature


def augmentation(cfg: DictConfig):
    """The configured augmentation layers as one Keras layer (None: no augmentation)."""
    import keras
    from hydra.utils import instantiate

    layers = [instantiate(layer) for layer in cfg.augmentation.layers]
    return keras.Sequential(layers, name="augmentation") if layers else None


def optimizer(optimizer_cfg: DictConfig, total_steps: int):
    """The configured optimizer; `total_steps: auto` anywhere in it (a schedule's length) becomes the
    run's number of training steps, known once the data and batch size are."""
    from hydra.utils import instantiate

    def fill(node):
        if isinstance(node, dict):
            return {
                k: total_steps if k == "total_steps" and v == "auto" else fill(v) for k, v in node.items()
            }
        return [fill(v) for v in node] if isinstance(node, list) else node

    return instantiate(fill(OmegaConf.to_container(optimizer_cfg, resolve=True)))


def evaluation_sample(size: int, limit: int | None):
    """The indices of a fixed sample of `limit` of `size` digits (all of them when limit is None)."""
    import numpy as np

    if limit is None or limit >= size:
        return np.arange(size)
    return np.sort(np.random.default_rng(0).choice(size, limit, replace=False))


def fit(
    trainee,
    inputs: dict,
    digits,
    cfg: DictConfig,
    route: str = "exact",
    augment=None,
    checkpoints: str | None = None,
    extra_callbacks: list | None = None,
) -> tuple[dict, float]:
    """Compile and fit with the configured optimizer, augmentation and callbacks; logs every epoch.

    `trainee` is the whole model on digits (route "exact", augmented by `augment`), or the top on
    backbone features ("cached"; "echoed": one of several augmented views per digit each epoch). With
    `checkpoints` (a directory) the training state is saved after every epoch and restored from there
    if present, so an interrupted run continues where it stopped.
    """
    import keras
    from hydra.utils import instantiate

    from src import data, features, tracking

    batch_size = cfg.training.batch_size
    if route == "echoed":
        train_ds = features.echo_dataset(inputs["train"], digits.y_train, batch_size, cfg.training.seed)
    else:
        train_ds = data.make_dataset(
            inputs["train"],
            digits.y_train,
            batch_size,
            shuffle=True,
            augment=augment if route == "exact" else None,
            seed=cfg.training.seed,
            deterministic=cfg.training.deterministic,
        )
    val_ds = data.make_dataset(inputs["validation"], digits.y_val, batch_size)
    steps = cfg.training.steps_per_execution
    mirrored = cfg.training.strategy == "mirrored"
    cached = route != "exact"
    jit = cfg.training.jit_compile
    trainee.compile(
        optimizer=optimizer(cfg.training.optimizer, cfg.training.epochs * len(train_ds)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # XLA fuses the top's small dense step (about 1.7x faster here); on the whole model it lost to
        # oneDNN's convolutions by far, so auto compiles only the top on cached features
        jit_compile=(cached and not mirrored) if jit == "auto" else bool(jit),
        # many small steps of the top alone: run several per call so Python does not dominate (not under
        # MirroredStrategy, where Keras cannot run several steps per call: keras-team/keras#19246)
        steps_per_execution=(32 if cached and not mirrored else 1) if steps == "auto" else int(steps),
    )
    callbacks = [instantiate(c) for c in cfg.training.callbacks.values() if c is not None]
    logged_through = tracking.last_logged_epoch() if cfg.training.resume else -1
    # the logger comes before the checkpoint: a saved epoch is always a logged one
    callbacks.append(tracking.epoch_logger(logged_through))  # also stops a run whose loss is not finite
    callbacks += extra_callbacks or []
    if checkpoints:
        callbacks.append(keras.callbacks.BackupAndRestore(backup_dir=checkpoints))
    callbacks.append(_INTERRUPTS.callback())  # last: an epoch it ends is logged and saved first
    start = time.perf_counter()
    _INTERRUPTS.training = True
    try:
        history = trainee.fit(
            train_ds,
            validation_data=val_ds,
            epochs=cfg.training.epochs,
            callbacks=callbacks,
            verbose=_verbosity(cfg.training.verbose),
            shuffle=False,  # the pipeline shuffles
        )
    finally:
        _INTERRUPTS.training = False
    return history.history, time.perf_counter() - start


class _Interrupts:
    """SIGINT (Ctrl-C) and SIGTERM end the run as KILLED, through KeyboardInterrupt.

    While Keras trains, the first signal is held until the training step under way has ended (in
    validation: until the epoch has ended, and been logged and saved). Raised at once, an interrupt
    that came as an epoch began its input pipeline crashed the process (glibc "free(): invalid next
    size"), so the run was never marked KILLED. A second signal stops at once.
    """

    training = False
    pending: int | None = None

    def handle(self, signum, frame):
        if self.training and self.pending is None:
            self.pending = signum
            log.warning("interrupted: stopping after the current step (interrupt again to stop at once)")
            return
        raise KeyboardInterrupt(f"signal {signum}")

    def raise_pending(self, *args, **kwargs) -> None:
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise KeyboardInterrupt(f"signal {signum}")

    def callback(self):
        """Raises a held interrupt once a training step has ended (as the next begins) and after each epoch.

        Not at a step's end: a batch-end hook makes Keras wait for every step's metrics.
        """
        import keras

        def step_begins(batch, logs=None):
            if batch > 0:  # the step before it has ended; batch 0 is the epoch's pipeline starting
                self.raise_pending()

        return keras.callbacks.LambdaCallback(
            on_train_batch_begin=step_begins, on_epoch_end=self.raise_pending
        )


_INTERRUPTS = _Interrupts()


def set_determinism(deterministic: bool) -> None:
    """training.deterministic: TensorFlow's op determinism on for this run (off again for a later run of
    the same process, e.g. a sweep's next job)."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config  # the switch back off is not public

    if deterministic:
        tf.config.experimental.enable_op_determinism()
    elif tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()


def _checkpoint_dir(cfg: DictConfig, run_id: str) -> str:
    return str(Path(cfg.training.checkpoint_dir).absolute() / run_id)


def _verbosity(verbose) -> int:
    """auto: a progress bar on a terminal, one line per epoch in logs and CI."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def _registered_uri(cfg: DictConfig) -> str:
    """The URI of the model evaluated when training.enabled=false, checked (without loading Keras) to name
    a model in the store."""
    import mlflow

    from src import access, tracking

    tracking.use_store(cfg.tracking, create=False)
    uri = cfg.training.model_uri or f"models:/{cfg.tracking.registered_model}/latest"
    try:
        mlflow.models.get_model_info(uri)
    except (mlflow.exceptions.MlflowException, OSError) as e:
        if access.refusal(e):
            raise
        raise UserError(f"training.model_uri: cannot load {uri}: {str(e).splitlines()[0]}") from None
    return uri


def _load_registered(cfg: DictConfig):
    """The model evaluated when training.enabled=false."""
    import mlflow

    from src import access

    uri = _registered_uri(cfg)
    try:
        return mlflow.keras.load_model(uri)
    except (mlflow.exceptions.MlflowException, OSError) as e:
        if access.refusal(e):
            raise
        raise UserError(f"training.model_uri: cannot load {uri}: {str(e).splitlines()[0]}") from None


def _announce(fallbacks: list[str]) -> None:
    """Fallbacks change what a run means: say so where nobody can miss it."""
    for fallback in fallbacks:
        log.warning("FALLBACK %s", fallback)


def _from_launch_directory(launch_dir: str) -> None:
    """Relative paths (data.path, caches, checkpoints, mlruns/) mean the directory the command ran in,
    also in a job that a launcher (Ray, submitit) starts elsewhere."""
    if Path.cwd() != Path(launch_dir):
        log.info("job runs in %s: working from the launch directory %s", Path.cwd(), launch_dir)
        os.chdir(launch_dir)


def _handle_interrupts() -> None:
    """Ctrl-C and a scheduler's SIGTERM end the run the same way: marked KILLED, exit code 130."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _INTERRUPTS.handle)


def _register_search_sweeper() -> None:
    """hydra/sweeper=optuna_search lives in the hydra_plugins namespace, where Hydra looks for plugins,
    but Hydra's scan cannot list a package that an editable install maps in: register it (and its
    configs) before Hydra composes."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.handwritten_digits.optuna_search import OptunaSearch

    Plugins.instance().register(OptunaSearch)


_register_search_sweeper()


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Returns the validation accuracy, the score a sweeper (Optuna) maximises; a sweep's job that failed
    or was pruned returns a sweep.TrialEnd instead, so the sweep goes on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from src import config, sweep

    hydra_cfg = HydraConfig.get()
    output_dir = hydra_cfg.runtime.output_dir
    _handle_interrupts()
    _from_launch_directory(hydra_cfg.runtime.cwd)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        # a failed job must not stop the sweep: its run is FAILED, the comparison shows it
        try:
            config.validate_training(cfg)
            context = sweep.job_context(hydra_cfg)
            with open_dict(cfg):
                cfg.tracking.uri = context["tracking_uri"]
            scores = train(cfg, output_dir, sweep=context)
            return scores.get("val_accuracy", scores["test_accuracy"])
        except sweep.TrialPruned as e:
            log.info("trial pruned: %s", e)
            return sweep.record_job_error(output_dir, e)
        except Exception as e:
            log.error("job failed: %s: %s", type(e).__name__, e, exc_info=not isinstance(e, UserError))
            return sweep.record_job_error(output_dir, e)
    try:
        config.validate_training(cfg)
        scores = train(cfg, output_dir)
        return scores.get("val_accuracy", scores["test_accuracy"])
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(
            "interrupted: the run is marked KILLED; continue it with training.resume=<its run id>",
            file=sys.stderr,
        )
        sys.exit(130)


if __name__ == "__main__":
    main()
