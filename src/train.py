"""Train, evaluate, log and register one model: python -m src.train [overrides].

`train` reads as the flow it is: data -> model -> fit -> evaluate -> log -> register. Heavy imports
(TensorFlow, MLflow) happen after Hydra has composed and checked the config, so a typo fails in about a
second. `training.enabled=false` evaluates a registered model instead (as python -m src.evaluate does).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig

from src import cli

if TYPE_CHECKING:
    from concurrent.futures import Future

    import keras

    from src.data import Digits
    from src.models.networks import Network
    from src.models.scoring import Evaluation
    from src.reading.digit_score import DigitScore
    from src.results import Setup
    from src.tracking.recorder import Recorder
    from src.training.digit_score import Crops
    from src.training.distribute import Distribution
    from src.training.init_from import Start
    from src.training.non_digits import Pending
    from src.training.routes import Route

log = logging.getLogger("src.train")


def train(
    cfg: DictConfig, hydra_output_dir: str | None = None, sweep: dict | None = None
) -> dict[str, float]:
    """One run in the tracking store (a child of the sweep's parent run in a sweep); returns its scores.

    What can be refused cheaply (a login, the data file, a run that cannot be resumed) is refused before
    TensorFlow loads.
    """
    from src import tracking
    from src.reading.folder import load_data
    from src.tracking import access
    from src.training import distribute, fit, init_from

    if not cfg.training.enabled:
        from src.evaluate import evaluate_registered

        return evaluate_registered(cfg, hydra_output_dir, sweep)
    sweep = sweep or {}
    uri = tracking.resolve_uri(cfg.tracking.uri)
    access.check_login(uri)
    tracking.check_folder(uri)
    # a fine-tune (training.init_from): its model must be there; the network config becomes its run's
    begin = init_from.start(cfg, init_from.given_overrides())
    digits = load_data(cfg.data, strict=cfg.strict)
    extra = _start_non_digits(cfg, digits)
    if cfg.training.resume:  # nothing is written to the store before this
        tracking.use_store(cfg.tracking, create=False)
        tracking.check_resumable(cfg.training.resume, fit.checkpoint_dir(cfg, cfg.training.resume))
    with distribute.tensorflow_setting(cfg) as distribution:
        from src.tracking.recorder import Recorder
        from src.training import routes
        from src.training.callbacks import TrialPruned

        network, policy = _build_network(cfg, begin, digits)
        fallbacks = digits.fallbacks + network.fallbacks
        cli.announce(fallbacks)
        setup = _setup(network.model, digits, distribution, fallbacks, policy, begin)
        # a resumed run is opened first: where its training continues is in the run
        with Recorder(cfg, hydra_output_dir, sweep).opened(setup, not cfg.training.resume) as recorder:
            route = routes.choose(cfg, network, digits)  # exact, or the top on cached or echoed features
            recorder.route(route.name, route.why, route.feature_cache)
            checkpoints = fit.checkpoints(cfg, recorder.run_id)
            at_training = cfg.training.digit_score.get("when", "training") == "training"
            crops = _start_digit_score_crops(cfg, digits, at_training)
            trained = fit.fit_route(cfg, route, digits, checkpoints, sweep, non_digits=extra, sink=recorder)
            recorder.training(trained)
            if trained.pruned:
                raise TrialPruned(trained.pruned)
            validation, test = _evaluate(cfg, network, route, digits, recorder)
            score = _fit_digit_score(cfg, network, crops, at_training, recorder)
            # a sweep promotes at its end; a score left to the first reader registers the reading model then
            _register(network, score, at_training, not sweep, recorder)
        cli.announce(fallbacks)
    return {"test_accuracy": test.accuracy, "test_loss": test.loss, "val_accuracy": validation.accuracy}


def _start_non_digits(cfg: DictConfig, digits: Digits) -> Pending | None:
    """Generated non-digits and digits cut as a reader cuts them, for the training split: cut in another
    process while TensorFlow loads and the model is built (src/training/non_digits.py)."""
    from src.training import non_digits

    return non_digits.start_for(cfg.training, digits.x_train, digits.y_train)


def _build_network(cfg: DictConfig, begin: Start | None, digits: Digits) -> tuple[Network, tuple[str, str]]:
    """The seed and the precision set, the network built (from scratch, or from training.init_from);
    returns it with the precision and what chose it."""
    from src.models import networks, precision
    from src.training import fit, init_from

    fit.set_seed(cfg.training)
    policy = precision.choose(cfg.training.precision, cfg.training.precision_probe)
    networks.set_precision(policy[0])
    log.info("data: %s %s from %s", digits.name, digits.sizes(), digits.source)
    return init_from.build_network(cfg, begin), policy


def _setup(
    model: keras.Model,
    digits: Digits,
    distribution: Distribution,
    fallbacks: list[str],
    policy: tuple[str, str],
    begin: Start | None = None,
) -> Setup:
    """What the run is before it fits or scores anything, as its recorder logs it as it opens."""
    from src.models.networks import count_params
    from src.results import Setup

    return Setup(
        count_params(model),
        digits.record(),
        distribution.replicas,
        distribution.devices,
        fallbacks,
        policy,
        (begin.uri, begin.run_id) if begin else None,
    )


def _start_digit_score_crops(cfg: DictConfig, digits: Digits, at_training: bool) -> Future[Crops | None]:
    """The digit score: fitted by the model's first reader (training.digit_score.when=read,
    src/training/digit_score.py: fitted_when_read), or at the end of training. Its crops are cut while
    the model trains: started here, not earlier, they would hold back the start-up's Python (the first
    step came 3 s later)."""
    from src.training.digit_score import cut_in_background

    sample = cfg.training.digit_score.sample if at_training else 0
    return cut_in_background(digits, sample, cfg.training.seed, cfg.training.feature_cache_dir)


def _evaluate(
    cfg: DictConfig, network: Network, route: Route, digits: Digits, recorder: Recorder
) -> tuple[Evaluation, Evaluation]:
    """The trained model scored on the training sample, validation (calibrated, the calibration folded
    into the model) and test, all recorded; returns (validation, test)."""
    from src.models import calibration
    from src.models.scoring import evaluate
    from src.training import fit

    train_scores, validation, temperature = fit.score_training(cfg, network, route, digits)
    recorder.evaluation(train_scores, prefix="final_train_")
    recorder.evaluation(validation, prefix="final_val_")
    test = evaluate(route.trainee, route.inputs["test"], digits.y_test, "test")
    recorder.evaluation(test, images=digits.x_test)
    if temperature:
        recorder.calibration(calibration.summary(temperature, validation, test))
    log.info("test accuracy %.4f, test loss %.4f", test.accuracy, test.loss)
    return validation, test


def _fit_digit_score(
    cfg: DictConfig, network: Network, crops: Future[Crops | None], at_training: bool, recorder: Recorder
) -> DigitScore | None:
    """The digit score fitted on the crops cut during training, and recorded (None: left to the model's
    first reader, or none asked for)."""
    from src.training.digit_score import fit_digit_score, record

    score = None
    if at_training:
        score = fit_digit_score(
            network.model,
            crops.result(),
            cfg.training.digit_score.keep,
            hidden=cfg.training.digit_score.hidden,
            seed=cfg.training.seed,
            keep_cut=cfg.training.digit_score.get("keep_cut"),
        )
    elif cfg.training.digit_score.sample:
        log.info("digit score: left to the model's first reader (training.digit_score.when=read)")
    recorder.digit_score(record(score) if score is not None else None)
    return score


def _register(
    network: Network, score: DigitScore | None, reader: bool, promote: bool, recorder: Recorder
) -> None:
    """The model registered with its digit score (and, with `reader`, its reading model: its flavour,
    src/reading/reader_model.py), and with `promote` offered the champion alias."""
    import functools

    from src.data import IMAGE_SHAPE, NUM_CLASSES
    from src.training.digit_score import record

    log_reader = None
    if reader:
        from src.reading.reader_model import log_reader as flavour

        log_reader = functools.partial(flavour, network.model, digit_score=score)
    kept = record(score) if score is not None else None
    recorder.register(network.model, (IMAGE_SHAPE, NUM_CLASSES), promote, kept, log_reader)


def _register_search_sweeper() -> None:
    """hydra/sweeper=optuna_search lives in the hydra_plugins namespace, where Hydra looks for plugins,
    but Hydra's scan cannot list a package that an editable install maps in: register it (and its
    configs) before Hydra composes."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.handwritten_digits.optuna_search import OptunaSearch

    Plugins.instance().register(OptunaSearch)


_register_search_sweeper()


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    """Returns the validation accuracy, the score a sweeper (Optuna) maximises; a sweep's job that failed
    or was pruned returns a sweep.TrialEnd instead, so the sweep goes on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from src import config
    from src.sweeps import sweep
    from src.training.interrupts import handle_interrupts

    hydra_cfg = HydraConfig.get()
    handle_interrupts()
    sweep.work_from_launch_directory(hydra_cfg.runtime.cwd)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return sweep.run_job(cfg, hydra_cfg, train)
    with cli.user_errors(
        interrupted="the run is marked KILLED; continue it with training.resume=<its run id>"
    ):
        config.validate_training(cfg)
        scores = train(cfg, hydra_cfg.runtime.output_dir)
        return scores.get("val_accuracy", scores["test_accuracy"])


if __name__ == "__main__":
    cli.help_if_asked(__doc__, "train")
    cli.outlive_closed_output()  # `python -m src.train | head` must not end the training
    main()
