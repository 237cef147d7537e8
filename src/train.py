"""Train, evaluate, log and register one model: python -m src.train [overrides].

`train` reads as the flow it is: data -> model -> fit -> evaluate -> log -> register. Heavy imports
(TensorFlow, MLflow) happen after Hydra has composed and checked the config, so a typo fails in about a
second. `training.enabled=false` evaluates a registered model instead (as python -m src.evaluate does).
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig

from src import cli

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
    from src.training import distribute, fit, init_from, non_digits

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
    # generated non-digits and digits cut as a reader cuts them, for the training split: cut in another
    # process while TensorFlow loads and the model is built (src/training/non_digits.py). A run logged
    # before the key existed (src.rerun) trained without them.
    shares = cfg.training.get("non_digits") or {}
    extra = non_digits.start(
        digits.x_train,
        digits.y_train,
        round(shares.get("share", 0.0) * len(digits.x_train)),
        round(shares.get("as_read", 0.0) * len(digits.x_train)),
        cfg.training.seed,
        cfg.training.feature_cache_dir,  # kept there: the next start with the same digits loads them
        round(shares.get("pairs", 0.0) * len(digits.x_train)),
    )
    if cfg.training.resume:  # nothing is written to the store before this
        tracking.use_store(cfg.tracking, create=False)
        tracking.check_resumable(cfg.training.resume, fit.checkpoint_dir(cfg, cfg.training.resume))
    with distribute.tensorflow_setting(cfg) as distribution:
        from src.models import networks, precision
        from src.models.scoring import evaluate
        from src.training import routes
        from src.training.digit_score import cut_in_background, fit_digit_score

        fit.set_seed(cfg.training)
        policy = precision.choose(cfg.training.precision, cfg.training.precision_probe)
        networks.set_precision(policy[0])
        log.info("data: %s %s from %s", digits.name, digits.sizes(), digits.source)
        network = init_from.build_network(cfg, begin)  # from scratch, or from training.init_from
        fallbacks = digits.fallbacks + network.fallbacks
        cli.announce(fallbacks)

        name = cfg.tracking.run_name or sweep.get("run_name") or cfg.backbone.name
        tags = {**cfg.tracking.tags, **sweep.get("tags", {})}

        def open_run() -> str:  # in a thread, while the model starts training (src/tracking/opening.py)
            tracking.use_store(cfg.tracking)
            active = tracking.start_run(name, sweep.get("parent_run_id"), tags, run_id=cfg.training.resume)
            tracking.log_setup(cfg, hydra_output_dir, network.model, digits, distribution, fallbacks, policy)
            if begin:
                tracking.log_init_from(begin.uri, begin.run_id)
            return active.info.run_id

        # a resumed run is opened first: where its training continues is in the run
        with tracking.opened(open_run, background=not cfg.training.resume) as opening:
            route = routes.choose(cfg, network, digits)  # exact, or the top on cached or echoed features
            checkpoints = fit.checkpoints(cfg, opening)
            # the digit score: fitted by the model's first reader (training.digit_score.when=read,
            # src/training/digit_score.py: fitted_when_read), or here. Its crops are cut while the model
            # trains: started here, not earlier, they would hold back the start-up's Python (the first
            # step came 3 s later)
            at_training = cfg.training.digit_score.get("when", "training") == "training"
            sample = cfg.training.digit_score.sample if at_training else 0
            crops = cut_in_background(digits, sample, cfg.training.seed, cfg.training.feature_cache_dir)
            fit.fit_route(cfg, route, digits, checkpoints, sweep, non_digits=extra)
            validation, temperature = fit.score_training(cfg, network, route, digits)
            test = evaluate(route.trainee, route.inputs["test"], digits.y_test, "test")
            tracking.log_evaluation(test, images=digits.x_test)
            if temperature:
                tracking.log_calibration(temperature, validation, test)
            log.info("test accuracy %.4f, test loss %.4f", test.accuracy, test.loss)
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
            tracking.log_digit_score(score)
            # a sweep promotes at its end; a score left to the first reader registers the reading model then
            tracking.register(
                network.model, cfg.tracking, promote=not sweep, digit_score=score, reader=at_training
            )
        cli.announce(fallbacks)
    return {"test_accuracy": test.accuracy, "test_loss": test.loss, "val_accuracy": validation.accuracy}


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
