"""The callbacks a training gets besides the configured ones: the epoch logger (metrics to a sink, the
recorder in a tracked run; a loss that is no longer finite stops training), and in a search's trial the
pruner's (src/sweeps/search.py), which ends the run with TrialPruned."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import keras

    from src.results import TrainingSink

log = logging.getLogger(__name__)


class TrialPruned(Exception):
    """Raised from a training the pruner stopped: its run ends KILLED, tagged sweep.trial_state=PRUNED."""

    run_status = "KILLED"
    tags = {"sweep.trial_state": "PRUNED"}


_FIRST_STEP_SEEN = False


def epoch_logger(sink: TrainingSink | None = None) -> keras.callbacks.Callback:
    """A Keras callback telling `sink` every epoch's metrics, learning rate and duration (at the epoch's
    index) and the command's first training step's time since the process started (`startup_s`); it
    stops training once the loss is no longer finite. Without a sink (a training that no run records),
    the metrics are Keras's history alone.

    In a tracked run the sink is the recorder (src/tracking/recorder.py), whose run may still be opening
    in a thread as training starts: it holds the first step's time and waits at the first epoch's end.
    """
    import keras
    import numpy as np

    import src

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
                    if sink is not None:
                        sink.first_step(startup)

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            metrics = {k: float(v) for k, v in (logs or {}).items()}
            learning_rate = self.model.optimizer.learning_rate
            metrics.setdefault("learning_rate", float(keras.ops.convert_to_numpy(learning_rate)))
            metrics["epoch_time_s"] = time.perf_counter() - self.epoch_start
            if sink is not None:
                sink.epoch(epoch, metrics)
            if not np.isfinite(metrics.get("loss", 0.0)):
                # checked once per epoch, not per batch: a per-batch check would sync every step
                self.model.stop_training = True

    return EpochLogger()


def checkpoint_saver(where: str | Callable[[], str]) -> keras.callbacks.Callback:
    """Keras BackupAndRestore in the directory `where` (restoring from it as training begins); or, given
    a function that returns the directory once the run being opened is open, a saver that starts saving
    there at the first epoch's end (the recorder, told the epoch by the epoch logger, has waited for the
    run by then; a new run has nothing to restore)."""
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
