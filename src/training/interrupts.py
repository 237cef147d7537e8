"""Ctrl-C and a scheduler's SIGTERM end a run the same way: marked KILLED, exit code 130.

While Keras trains, the first signal is held until the training step under way has ended (in
validation: until the epoch has ended, and been logged and saved). Raised at once, an interrupt that
came as an epoch began its input pipeline crashed the process (glibc "free(): invalid next size"), so
the run was never marked KILLED. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

    import keras

log = logging.getLogger(__name__)


class Interrupts:
    """The process's signal handler: holds a signal while a training step runs."""

    training = False
    pending: int | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.training and self.pending is None:
            self.pending = signum
            log.warning("interrupted: stopping after the current step (interrupt again to stop at once)")
            return
        raise KeyboardInterrupt(f"signal {signum}")

    def raise_pending(self, *args: Any, **kwargs: Any) -> None:
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise KeyboardInterrupt(f"signal {signum}")

    @contextlib.contextmanager
    def while_training(self) -> Iterator[None]:
        self.training = True
        try:
            yield
        finally:
            self.training = False

    def callback(self) -> keras.callbacks.Callback:
        """Raises a held interrupt once a training step has ended (as the next begins) and after each epoch.

        Not at a step's end: a batch-end hook makes Keras wait for every step's metrics.
        """
        import keras

        def step_begins(batch: int, logs: dict | None = None) -> None:
            if batch > 0:  # the step before it has ended; batch 0 is the epoch's pipeline starting
                self.raise_pending()

        return keras.callbacks.LambdaCallback(
            on_train_batch_begin=step_begins, on_epoch_end=self.raise_pending
        )


INTERRUPTS = Interrupts()


def handle_interrupts() -> None:
    """Install the handler for SIGINT and SIGTERM (once per process, by the command)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, INTERRUPTS.handle)
