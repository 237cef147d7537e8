"""Score a registered model on the test set, in a new run (nothing trained, nothing registered).

python -m src.evaluate model=models:/handwritten-digits/1 [data=... data.path=...]

`model` takes any MLflow model URI of a classifier (default: the latest version of
tracking.registered_model); the data, tracking and precision keys are training's. `python -m src.train
training.enabled=false training.model_uri=...` does the same.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from src import UserError, cli

if TYPE_CHECKING:
    import keras

log = logging.getLogger("src.evaluate")


def evaluate_registered(
    cfg: DictConfig, hydra_output_dir: str | None = None, sweep: dict | None = None
) -> dict[str, float]:
    """The model at training.model_uri scored on the test split of cfg.data, in a run of its own."""
    from src import tracking
    from src.reading.folder import load_data
    from src.tracking import access

    sweep = sweep or {}
    access.check_login(tracking.resolve_uri(cfg.tracking.uri))
    # a folder is scored whole (its test/ alone where it has one)
    digits = load_data(cfg.data, strict=cfg.strict, evaluation=True)
    uri = registered_uri(cfg)  # a model that is not there fails before TensorFlow loads
    from src.training import distribute

    with distribute.tensorflow_setting(cfg) as distribution:
        from src.models import networks, precision
        from src.models.scoring import evaluate
        from src.results import Setup
        from src.tracking.recorder import Recorder
        from src.training import fit

        fit.set_seed(cfg.training)
        requested = "float32" if cfg.training.precision == "auto" else cfg.training.precision
        policy = precision.choose(requested, cfg.training.precision_probe)  # as it was saved, unless told
        networks.set_precision(policy[0])
        log.info("data: %s %s from %s", digits.name, digits.sizes(), digits.source)
        model = load_registered(uri)
        cli.announce(digits.fallbacks)

        size = networks.count_params(model)
        setup = Setup(
            size, digits.record(), distribution.replicas, distribution.devices, digits.fallbacks, policy
        )
        with Recorder(cfg, hydra_output_dir, sweep).opened(setup, background=False) as recorder:
            test = evaluate(model, digits.x_test[..., None], digits.y_test, "test")
            recorder.evaluation(test, images=digits.x_test)
            log.info("test accuracy %.4f, test loss %.4f", test.accuracy, test.loss)
        cli.announce(digits.fallbacks)
    return {"test_accuracy": test.accuracy, "test_loss": test.loss}


def registered_uri(cfg: DictConfig) -> str:
    """training.model_uri (default: the latest version of tracking.registered_model), checked without
    loading Keras to name a model in the store."""
    from src import tracking
    from src.tracking import records

    tracking.use_store(cfg.tracking, create=False)
    uri = cfg.training.model_uri or f"models:/{cfg.tracking.registered_model}/latest"
    try:
        records.model_info(uri)
    except records.NotFound as e:
        raise UserError(f"training.model_uri: cannot load {uri}: {e}") from None
    return uri


def load_registered(uri: str) -> keras.Model:
    from src.tracking import records

    try:
        return records.load_keras_model(uri)
    except records.NotFound as e:
        raise UserError(f"training.model_uri: cannot load {uri}: {e}") from None


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
@cli.command()
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from src import config

    config.validate_training(cfg)
    scores = evaluate_registered(cfg, HydraConfig.get().runtime.output_dir)
    print(f"test accuracy {scores['test_accuracy']:.4f}, test loss {scores['test_loss']:.4f}")


if __name__ == "__main__":
    cli.help_if_asked(__doc__, "evaluate")
    cli.outlive_closed_output()  # `python -m src.evaluate | head` must not end it
    main()
