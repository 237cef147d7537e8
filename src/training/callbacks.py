"""The callbacks a training gets besides the configured ones: the epoch logger (metrics to MLflow; a loss
that is no longer finite stops training), and in a search's trial the pruner's (src/sweeps/search.py),
which ends the run with TrialPruned."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import keras

log = logging.getLogger(__name__)


class TrialPruned(Exception):
    """Raised from a training the pruner stopped: its run ends KILLED, tagged sweep.trial_state=PRUNED."""

    run_status = "KILLED"
    tags = {"sweep.trial_state": "PRUNED"}


_FIRST_STEP_SEEN = False


def last_logged_epoch() -> int:
    """The last epoch whose metrics the active run holds (-1: none), for a resumed run."""
    from src.tracking import records

    return records.last_logged_step("loss")


def epoch_logger(logged_through: int = -1) -> keras.callbacks.Callback:
    """A Keras callback logging every epoch's metrics, learning rate and duration at step = epoch index.

    Each epoch is logged in one synchronous write (a few milliseconds on SQLite): MLflow's asynchronous
    logger cost more, since each flush (after training, at the run's end) waited out its one-second poll
    of an empty queue, about 3 s of a 20 s run. The first training step's time
    since the process started is logged as `startup_s`. A loss that is no longer finite stops training.
    Epochs up to `logged_through` (a resumed run's last logged epoch) are not logged again.

    The run may still be opening in a thread as training starts (src/tracking/opening.py): the first
    step's time is held until it is open, and the first epoch's end waits for it. MLflow is imported only
    then, so this thread does not wait on the opening thread's import of it.
    """
    import keras
    import numpy as np

    import src
    from src import tracking

    class EpochLogger(keras.callbacks.Callback):
        started = None

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            global _FIRST_STEP_SEEN
            if self.started is None:
                self.started = time.time()
                if not _FIRST_STEP_SEEN:  # the command's first training (not a later job of a sweep)
                    _FIRST_STEP_SEEN = True
                    startup = self.started - src.STARTED
                    log.info("first training step %.1f s after start", startup)
                    tracking.when_open(lambda: _log_metrics({"startup_s": startup}))

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch <= logged_through:
                # resumed from a checkpoint older than the last logged epoch (interrupted between the
                # two): this epoch ran again, its first metrics stand
                return
            metrics = {k: float(v) for k, v in (logs or {}).items()}
            learning_rate = self.model.optimizer.learning_rate
            metrics.setdefault("learning_rate", float(keras.ops.convert_to_numpy(learning_rate)))
            metrics["epoch_time_s"] = time.perf_counter() - self.epoch_start
            tracking.wait_open()
            start = time.perf_counter()
            _log_metrics(metrics, step=epoch)
            log.debug("epoch %d logged in %.3f s", epoch, time.perf_counter() - start)
            if not np.isfinite(metrics.get("loss", 0.0)):
                # checked once per epoch, not per batch: a per-batch check would sync every step
                self.model.stop_training = True

    return EpochLogger()


def _log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    from src.tracking import records

    records.log_metrics(metrics, step)


def checkpoint_saver(where: str | Callable[[], str]) -> keras.callbacks.Callback:
    """Keras BackupAndRestore in the directory `where` (restoring from it as training begins); or, given
    a function that returns the directory once the run being opened is open, a saver that starts saving
    there at the first epoch's end (the epoch logger has waited for the run by then; a new run has
    nothing to restore)."""
    import keras

    if isinstance(where, str):
        return keras.callbacks.BackupAndRestore(backup_dir=where)
    once_open = where

    class RunCheckpoints(keras.callbacks.Callback):
        saver = None

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if self.saver is None:
                self.saver = keras.callbacks.BackupAndRestore(backup_dir=once_open())
                self.saver.set_model(self.model)
                self.saver.set_params(self.params)
            self.saver.on_epoch_end(epoch, logs)

        def on_train_end(self, logs: dict | None = None) -> None:
            if self.saver is not None:  # removes the directory, as BackupAndRestore does
                self.saver.on_train_end(logs)

    return RunCheckpoints()
