"""Train, evaluate, log and register one model: python -m src.train [overrides].

Reads top to bottom: data -> model -> fit -> evaluate -> log. Heavy imports (TensorFlow, MLflow) happen
after Hydra has composed and checked the config, so a typo fails in about a second.
"""

from __future__ import annotations

import logging
import signal
import sys
import time

import hydra
from omegaconf import DictConfig

from src import UserError

log = logging.getLogger("src.train")


def train(
    cfg: DictConfig, hydra_output_dir: str | None = None, sweep: dict | None = None
) -> dict[str, float]:
    """One run in the tracking store (a child of the sweep's parent run in a sweep); returns its scores."""
    import keras

    from src import data, model, tracking
    from src.evaluate import evaluate

    keras.utils.set_random_seed(cfg.training.seed)
    digits = data.load_digits(cfg.data, strict=cfg.strict)
    log.info("data: %s %s from %s", digits.name, digits.sizes(), digits.source)
    if cfg.training.enabled:
        net, weight_fallbacks = model.build_model(cfg, strict=cfg.strict)
    else:
        net, weight_fallbacks = _load_registered(cfg), []
    fallbacks = digits.fallbacks + weight_fallbacks
    _announce(fallbacks)

    sweep = sweep or {}
    tracking.use_store(cfg.tracking)
    run_name = cfg.tracking.run_name or sweep.get("run_name") or cfg.backbone.name
    with tracking.run(run_name, sweep.get("parent_run_id"), sweep.get("tags")):
        tracking.log_config(cfg, hydra_output_dir)
        tracking.log_model_size(model.count_params(net))
        tracking.log_dataset(digits)
        tracking.log_fallbacks(fallbacks)

        if cfg.training.enabled:
            history, seconds = fit(net, digits, cfg)
            tracking.log_training(history, seconds)
            tracking.log_evaluation(
                evaluate(net, digits.x_train, digits.y_train, "train"), prefix="final_train_"
            )
            validation = evaluate(net, digits.x_val, digits.y_val, "validation")
            tracking.log_evaluation(validation, prefix="final_val_")

        test = evaluate(net, digits.x_test, digits.y_test, "test")
        tracking.log_evaluation(test, images=digits.x_test)
        log.info("test accuracy %.4f, test loss %.4f", test.accuracy, test.loss)
        if cfg.training.enabled:
            tracking.log_model(net, cfg.tracking.registered_model)
    if cfg.training.enabled and cfg.tracking.registered_model:
        tracking.promote_champion(cfg.tracking.registered_model, **cfg.tracking.champion)
    _announce(fallbacks)
    scores = {"test_accuracy": test.accuracy, "test_loss": test.loss}
    if cfg.training.enabled:
        scores["val_accuracy"] = validation.accuracy
    return scores


def fit(net, digits, cfg: DictConfig) -> tuple[dict[str, list[float]], float]:
    """Compile and fit with the configured optimizer, augmentation and callbacks; logs every epoch."""
    import keras
    from hydra.utils import instantiate

    from src import data, tracking

    layers = [instantiate(layer) for layer in cfg.augmentation.layers]
    augment = keras.Sequential(layers, name="augmentation") if layers else None
    batch_size = cfg.training.batch_size
    train_ds = data.make_dataset(
        digits.x_train, digits.y_train, batch_size, shuffle=True, augment=augment, seed=cfg.training.seed
    )
    val_ds = data.make_dataset(digits.x_val, digits.y_val, batch_size)
    net.compile(
        optimizer=instantiate(cfg.training.optimizer),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = [instantiate(c) for c in cfg.training.callbacks.values()] + [tracking.epoch_logger()]
    start = time.perf_counter()
    history = net.fit(
        train_ds,
        validation_data=val_ds,
        epochs=cfg.training.epochs,
        callbacks=callbacks,
        verbose=_verbosity(cfg.training.verbose),
        shuffle=False,  # the pipeline shuffles
    )
    return history.history, time.perf_counter() - start


def _verbosity(verbose) -> int:
    """auto: a progress bar on a terminal, one line per epoch in logs and CI."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def _load_registered(cfg: DictConfig):
    """The model evaluated when training.enabled=false."""
    import mlflow

    from src import tracking

    tracking.use_store(cfg.tracking)
    uri = cfg.training.model_uri or f"models:/{cfg.tracking.registered_model}/latest"
    try:
        return mlflow.keras.load_model(uri)
    except mlflow.exceptions.MlflowException as e:
        raise UserError(f"training.model_uri: cannot load {uri}: {str(e).splitlines()[0]}") from None


def _announce(fallbacks: list[str]) -> None:
    """Fallbacks change what a run means: say so where nobody can miss it."""
    for fallback in fallbacks:
        log.warning("FALLBACK %s", fallback)


def _interrupt_on_sigterm() -> None:
    """A scheduler's SIGTERM ends the run like Ctrl-C does (the run is marked KILLED)."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Returns the validation accuracy, the score a sweeper (Optuna) maximises."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from src import sweep

    hydra_cfg = HydraConfig.get()
    output_dir = hydra_cfg.runtime.output_dir
    _interrupt_on_sigterm()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        # a failed job must not stop the sweep: its run is FAILED, the comparison shows it
        try:
            scores = train(cfg, output_dir, sweep=sweep.job_context(hydra_cfg))
            return scores.get("val_accuracy", scores["test_accuracy"])
        except Exception as e:
            log.error("job failed: %s: %s", type(e).__name__, e, exc_info=not isinstance(e, UserError))
            return sweep.record_job_error(output_dir, e)
    try:
        scores = train(cfg, output_dir)
        return scores.get("val_accuracy", scores["test_accuracy"])
    except UserError as e:
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
