"""Fitting a network as configured: optimizer (with `total_steps: auto` filled in), augmentation, the
configured callbacks plus the epoch logger, checkpoints and interrupts; calibration afterwards."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from src import UserError
from src.results import Training
from src.training.interrupts import INTERRUPTS

if TYPE_CHECKING:
    from typing import Any

    import keras
    import numpy as np
    import tensorflow as tf

    from src.data import Digits
    from src.models.networks import Network
    from src.models.scoring import Evaluation
    from src.results import TrainingSink
    from src.training.non_digits import Pending
    from src.training.routes import Route

log = logging.getLogger(__name__)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite: the run fails and nothing is registered."""


def optimizer(optimizer_cfg: DictConfig, total_steps: int) -> keras.optimizers.Optimizer:
    """The configured optimizer; `total_steps: auto` anywhere in it (a schedule's length) becomes the
    run's number of training steps, known once the data and batch size are."""
    from hydra.utils import instantiate

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: total_steps if k == "total_steps" and v == "auto" else fill(v) for k, v in node.items()
            }
        return [fill(v) for v in node] if isinstance(node, list) else node

    return instantiate(fill(OmegaConf.to_container(optimizer_cfg, resolve=True)))


def fit(
    trainee: keras.Model,
    inputs: dict,
    digits: Digits,
    cfg: DictConfig,
    route: str = "exact",
    augment: keras.Layer | None = None,
    checkpoints: str | Callable[[], str] | None = None,
    extra_callbacks: list | None = None,
    non_digits: Pending | None = None,
    sink: TrainingSink | None = None,
) -> Training:
    """Compile and fit with the configured optimizer, augmentation and callbacks; every epoch is told to
    `sink` (the recorder of a tracked run; none: nothing is recorded). `non_digits`
    (src/training/non_digits.py: crops being cut) joins the training split of an exact route.

    `trainee` is the whole model on digits (route "exact", augmented by `augment`), or the top on
    backbone features ("cached"; "echoed": one of several augmented views per digit each epoch). With
    `checkpoints` (a directory, or what gives it once the run is open) the training state is saved after
    every epoch and restored from there if present, so an interrupted run continues where it stopped.
    """
    x_train, y_train, loss, metric = with_non_digits(inputs["train"], digits.y_train, route, non_digits)
    train_ds, val_ds = training_data(cfg, inputs, digits, route, augment, x_train, y_train)
    xla, steps = compile_trainee(trainee, cfg, route, len(train_ds), loss, metric)
    callbacks = training_callbacks(cfg, checkpoints, extra_callbacks, sink)
    start = time.perf_counter()
    with INTERRUPTS.while_training():
        history = trainee.fit(
            train_ds,
            validation_data=val_ds,
            epochs=cfg.training.epochs,
            callbacks=callbacks,
            verbose=verbosity(cfg.training.verbose),
            shuffle=False,  # the pipeline shuffles
        )
    seconds = time.perf_counter() - start
    if loss != "sparse_categorical_crossentropy":  # saved with Keras's own loss: it loads anywhere
        trainee.compile(
            optimizer=trainee.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
    return Training(history.history, seconds, xla, steps)


def with_non_digits(
    x_train: np.ndarray, y_train: np.ndarray, route: str, non_digits: Pending | None
) -> tuple[np.ndarray, np.ndarray, Any, Any]:
    """The training split, with the non-digits joined where the route trains on digits (an exact one),
    and the loss and metric that reads them; Keras's own loss and accuracy without."""
    if non_digits is None:
        return x_train, y_train, "sparse_categorical_crossentropy", "accuracy"
    if route != "exact":
        log.warning(
            "non-digits: not trained on (training.non_digits): the %s route trains the top on the backbone's "
            "features of the training split; only an exact route trains on them",
            route,
        )
        return x_train, y_train, "sparse_categorical_crossentropy", "accuracy"
    import numpy as np

    from src.training.non_digits import NOT_A_DIGIT, loss_and_metric

    images, labels, seconds = non_digits.result()
    x_train = np.concatenate([x_train, images[..., None].astype(x_train.dtype)])
    y_train = np.concatenate([y_train, labels.astype(y_train.dtype)])
    loss, metric = loss_and_metric()
    log.info(
        "non-digits: %d generated non-digits (toward even probabilities) and %d training digits as a "
        "reader cuts them join the training split (cut in %.1f s while the command started)",
        int((labels == NOT_A_DIGIT).sum()),
        int((labels != NOT_A_DIGIT).sum()),
        seconds,
    )
    return x_train, y_train, loss, metric


def training_data(
    cfg: DictConfig,
    inputs: dict,
    digits: Digits,
    route: str,
    augment: keras.Layer | None,
    x_train: np.ndarray,
    y_train: np.ndarray,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """The training pipeline (an echoed route's: one augmented view per digit each epoch; an exact one's
    augmented by `augment`) and the validation pipeline."""
    from src import data
    from src.training import features

    batch_size = cfg.training.batch_size
    if route == "echoed":
        train_ds = features.echo_dataset(inputs["train"], digits.y_train, batch_size, cfg.training.seed)
    else:
        train_ds = data.make_dataset(
            x_train,
            y_train,
            batch_size,
            shuffle=True,
            augment=augment if route == "exact" else None,
            seed=cfg.training.seed,
            deterministic=cfg.training.deterministic,
        )
    return train_ds, data.make_dataset(inputs["validation"], digits.y_val, batch_size)


def compile_trainee(
    trainee: keras.Model, cfg: DictConfig, route: str, steps_per_epoch: int, loss: Any, metric: Any
) -> tuple[bool, int]:
    """Compile with the configured optimizer (a schedule's length filled in), with XLA where it pays and
    several steps per call where Keras can; returns whether with XLA, and the training's steps."""
    steps = cfg.training.steps_per_execution
    mirrored = cfg.training.strategy == "mirrored"
    cached = route != "exact"
    total_steps = cfg.training.epochs * steps_per_epoch
    xla = use_xla(cfg.training.jit_compile, cached and not mirrored, total_steps)
    trainee.compile(
        optimizer=optimizer(cfg.training.optimizer, total_steps),
        loss=loss,
        metrics=[metric],
        jit_compile=xla,
        # many small steps of the top alone: run several per call so Python does not dominate (not under
        # MirroredStrategy, where Keras cannot run several steps per call: keras-team/keras#19246)
        steps_per_execution=(32 if cached and not mirrored else 1) if steps == "auto" else int(steps),
    )
    return xla, total_steps


def training_callbacks(
    cfg: DictConfig,
    checkpoints: str | Callable[[], str] | None,
    extra: list | None,
    sink: TrainingSink | None = None,
) -> list[keras.callbacks.Callback]:
    """The configured callbacks, then the epoch logger (telling `sink`), `extra`, the checkpoint saver
    and the interrupts, in that order."""
    from hydra.utils import instantiate

    from src.training.callbacks import checkpoint_saver, epoch_logger

    callbacks = [instantiate(c) for c in cfg.training.callbacks.values() if c is not None]
    # the logger comes before the checkpoint: a saved epoch is always a logged one
    callbacks.append(epoch_logger(sink))  # also stops a run whose loss is not finite
    callbacks += extra or []
    if checkpoints:
        callbacks.append(checkpoint_saver(checkpoints))
    callbacks.append(INTERRUPTS.callback())  # last: an epoch it ends is logged and saved first
    return callbacks


# XLA's compilation of the top's step costs about 1.5 s once and saves about 1 ms a step (measured on
# the 3600-digit sample's cached features, AMD EPYC, 2 cores: first epoch 2.8-3.1 s against 1.4-1.5 s,
# later epochs 0.24 s against 0.35 s for 113 steps), so it pays from about this many steps
XLA_MIN_STEPS = 1500


def use_xla(setting: str | bool, top_alone: bool, steps: int) -> bool:
    """training.jit_compile: true or false as set; auto compiles with XLA only the top training alone on
    cached features (XLA fuses its small dense step; on the whole model it lost to oneDNN's convolutions
    by far, ten times slower for VGG16) and only for a training of at least XLA_MIN_STEPS steps, which
    pays back the compilation."""
    if setting != "auto":
        return bool(setting)
    return top_alone and steps >= XLA_MIN_STEPS


def set_seed(training: DictConfig) -> None:
    """training.seed for Python, NumPy and TensorFlow, and training.deterministic's op determinism."""
    import keras

    keras.utils.set_random_seed(training.seed)
    set_determinism(training.deterministic)


def set_determinism(deterministic: bool) -> None:
    """training.deterministic: TensorFlow's op determinism on for this run (off again for a later run of
    the same process, e.g. a sweep's next job)."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config  # the switch back off is not public

    if deterministic:
        tf.config.experimental.enable_op_determinism()
    elif tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()


def checkpoint_dir(cfg: DictConfig, run_id: str) -> str:
    return str(Path(cfg.training.checkpoint_dir).absolute() / run_id)


def checkpoints(cfg: DictConfig, run_id: Callable[[], str]) -> str | Callable[[], str] | None:
    """Where the run's training state is saved (training.checkpoints): a resumed run's directory, or
    for a new run what gives its directory once the run being opened is open (`run_id` gives its id,
    which names it)."""
    if not cfg.training.checkpoints:
        return None
    if cfg.training.resume:
        return checkpoint_dir(cfg, cfg.training.resume)
    return lambda: checkpoint_dir(cfg, run_id())


def verbosity(verbose: str | int) -> int:
    """auto: a progress bar on a terminal, one line per epoch in logs and CI."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def evaluation_sample(size: int, limit: int | None) -> np.ndarray:
    """The indices of a fixed sample of `limit` of `size` digits (all of them when limit is None)."""
    import numpy as np

    if limit is None or limit >= size:
        return np.arange(size)
    return np.sort(np.random.default_rng(0).choice(size, limit, replace=False))


def calibrate(network: Network, validation: Evaluation) -> float | None:
    """Fit a temperature on the validation split and fold it into the model (None: not possible, said
    in the log: no validation digits, or a top that does not end in a softmax Dense layer)."""
    from src.models import calibration

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


def fit_route(
    cfg: DictConfig,
    route: Route,
    digits: Digits,
    checkpoints: str | Callable[[], str] | None,
    sweep: dict,
    non_digits: Pending | None = None,
    sink: TrainingSink | None = None,
) -> Training:
    """Fit the route's trainee; returns what the fit did. A search's trial may be pruned after any epoch
    (the result says why: `pruned`); a loss that is no longer finite fails the run (TrainingDiverged)."""
    import math

    # a search's trial: the pruner may stop it after any epoch
    pruner = sweep["pruner"](monitor="val_accuracy") if "pruner" in sweep else None
    training = fit(
        route.trainee,
        route.inputs,
        digits,
        cfg,
        route=route.name,
        augment=route.augment,
        checkpoints=checkpoints,
        extra_callbacks=[pruner] if pruner else [],
        non_digits=non_digits,
        sink=sink,
    )
    if pruner and pruner.pruned:
        training.pruned = pruner.pruned
        return training
    losses = training.history.get("loss", [])
    if losses and not all(map(math.isfinite, losses)):
        raise TrainingDiverged(
            f"the loss became {losses[-1]} at epoch {len(losses)}: training stopped and nothing "
            "registered (try a smaller training.optimizer.learning_rate)"
        )
    return training


def score_training(
    cfg: DictConfig, network: Network, route: Route, digits: Digits
) -> tuple[Evaluation, Evaluation, float | None]:
    """The trained network's end-of-run scores on the training sample and the validation split (after
    calibration); returns (training sample, validation, temperature or None). The test set is scored
    apart."""
    from src.models import calibration
    from src.models.scoring import evaluate

    # the training split is scored on a fixed sample (training.train_eval_sample digits): its scores
    # only show how far training and validation drift apart
    sample = evaluation_sample(len(digits.y_train), cfg.training.train_eval_sample)
    if route.name == "cached":
        train_scores = evaluate(route.trainee, route.inputs["train"][sample], digits.y_train[sample], "train")
    else:  # the echoed features are of augmented digits: score the digits themselves
        x = digits.x_train[sample][..., None]
        train_scores = evaluate(network.trainee, x, digits.y_train[sample], "train")
    validation = evaluate(route.trainee, route.inputs["validation"], digits.y_val, "validation")
    temperature = calibrate(network, validation) if cfg.training.calibrate else None
    if temperature:
        validation.probabilities = calibration.scale(validation.probabilities, temperature)
    return train_scores, validation, temperature
