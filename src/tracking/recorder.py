"""The recorder: what a training or an evaluation returns (src/results.py) written to its MLflow run.

The domain computes and returns; the recorder writes. It opens the run (in a thread while the model starts
training: opening.py), and what reaches it before the run is open (the route, the first step's time) is
held and written in order once it is; an epoch's metrics wait for the run. It hears the training as it
goes as a `results.TrainingSink`. MLflow is imported only by what runs once the run is open, so the main
thread does not wait on the opening thread's import of it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from src.tracking import opening

if TYPE_CHECKING:
    import keras
    import numpy as np
    from omegaconf import DictConfig

    from src.results import Calibration, DigitScoreRecord, Evaluation, FeatureCache, Setup, Training
    from src.tracking.registry import LogReader

log = logging.getLogger(__name__)


class Recorder:
    """One run of a command (a training, an evaluation): opened by `opened`, then told what was done."""

    def __init__(self, cfg: DictConfig, hydra_output_dir: str | None = None, sweep: Mapping | None = None):
        self.cfg = cfg
        self.hydra_output_dir = hydra_output_dir
        self.sweep = sweep or {}
        self._opening: opening.Opening | None = None
        self._logged_through: int | None = None  # a resumed run's last logged epoch, read at the first

    @contextlib.contextmanager
    def opened(self, setup: Setup, background: bool = True) -> Iterator[Recorder]:
        """The run, started with its setup logged (in a thread with `background`), and ended FINISHED,
        FAILED or KILLED as the block ends (tracking.run's states)."""
        with opening.opened(self._starter(setup), background) as self._opening:
            yield self

    def _starter(self, setup: Setup) -> Callable[[], str]:
        """What starts the run (or continues training.resume's) and logs what it is; returns its id."""
        cfg, sweep = self.cfg, self.sweep
        name = cfg.tracking.run_name or sweep.get("run_name") or cfg.backbone.name
        tags = {**cfg.tracking.tags, **sweep.get("tags", {})}

        def start() -> str:
            from src.tracking import runs, store

            store.use_store(cfg.tracking)
            active = runs.start_run(name, sweep.get("parent_run_id"), tags, run_id=cfg.training.resume)
            runs.log_setup(cfg, self.hydra_output_dir, setup)
            return active.info.run_id

        return start

    def _when_open(self, call: Callable[[], None]) -> None:
        assert self._opening is not None, "inside `opened`"
        self._opening.hold(call)

    def run_id(self) -> str:
        """The run's id, once it is open (a training's checkpoints are kept under it)."""
        assert self._opening is not None, "inside `opened`"
        return self._opening.wait()

    # the training as it goes (results.TrainingSink)
    def first_step(self, seconds: float) -> None:
        self._when_open(lambda: _log_metrics({"startup_s": seconds}))

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """An epoch's metrics at step = epoch index, in one synchronous write (MLflow's asynchronous
        logger cost more: each flush waited out its one-second poll of an empty queue, about 3 s of a 20 s
        run). A resumed run does not log again the epochs it logged before (resumed from a checkpoint older
        than its last logged epoch, interrupted between the two: the first metrics stand)."""
        self.run_id()
        if self._logged_through is None:
            from src.tracking import records

            self._logged_through = records.last_logged_step("loss") if self.cfg.training.resume else -1
        if epoch <= self._logged_through:
            return
        start = time.perf_counter()
        _log_metrics(metrics, step=epoch)
        log.debug("epoch %d logged in %.3f s", epoch, time.perf_counter() - start)

    # what the training returned
    def route(self, name: str, why: str, cache: FeatureCache) -> None:
        """exact, cached or echoed, and why; where its features came from and how long they took."""

        def record() -> None:
            from src.tracking import runs

            runs.log_route(name, why)
            runs.log_feature_cache(cache.state, cache.seconds, cache.test_seconds)

        self._when_open(record)

    def training(self, training: Training) -> None:
        """Whether its step was compiled with XLA, training time, epochs run and the learning curves."""
        from src.tracking import runs

        self.run_id()
        runs.log_xla(training.xla, training.steps)
        runs.log_training(training.seconds)

    def evaluation(
        self, evaluation: Evaluation, images: np.ndarray | None = None, prefix: str | None = None
    ) -> None:
        from src.tracking import scores

        self.run_id()
        scores.log_evaluation(evaluation, images, prefix)

    def calibration(self, calibration: Calibration) -> None:
        from src.tracking import scores

        self.run_id()
        scores.log_calibration(calibration)

    def digit_score(self, score: DigitScoreRecord | None) -> None:
        from src.tracking import scores

        self.run_id()
        scores.log_digit_score(score)

    def register(
        self,
        model: keras.Model,
        shapes: tuple[tuple[int, ...], int],
        promote: bool,
        score: DigitScoreRecord | None = None,
        log_reader: LogReader | None = None,
    ) -> str | None:
        """The trained model logged and registered as tracking.* says (src/tracking/registry.py)."""
        from src.tracking import registry

        metadata = score.model_metadata if score is not None else None
        return registry.register(model, self.cfg.tracking, shapes, promote, metadata, log_reader)


def _log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    from src.tracking import records

    records.log_metrics(metrics, step)
