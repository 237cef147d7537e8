"""A training's run, opened in a thread while the model starts training.

Opening a run is Python work of one thread: importing MLflow (2-3 s), choosing the store (creating or
migrating a SQLite database), starting the run and logging its setup (config, environment, data). Done
before training, it was a third of a command's start-up. Importing at the same time as TensorFlow does
not help (both hold the interpreter's lock: 8.6 s together against 7.4 s one after the other), but
training does not hold it: TensorFlow's kernels run in C++. So the run is opened in a thread started just
before training (by the recorder, src/tracking/recorder.py), and the main thread does not touch MLflow
until it needs the run: what it records meanwhile (the route, the first step's time) is held and logged
in order once the run is open, and the first epoch's metrics wait for the run. A run that fails or is
interrupted before then still ends FAILED or KILLED: the context waits for the run first.

The main thread must not import MLflow while the thread does (it would wait on the import lock), so
nothing here, nor in what it calls before `wait`, imports MLflow at module level.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


class Opening:
    """A run being opened by `start` (which returns its id) in a thread, or already opened."""

    def __init__(self, start: Callable[[], str], background: bool = True) -> None:
        self._held: list[Callable[[], None]] = []
        self._run_id: str | None = None
        self._error: BaseException | None = None
        self.open = False
        if background:
            self._thread: threading.Thread | None = threading.Thread(
                target=self._start, args=(start,), name="run-opening"
            )
            self._thread.start()
        else:
            self._thread = None
            self._start(start)
            if self._error is not None:
                raise self._error
            self.open = True  # started in this thread: already its active run

    def _start(self, start: Callable[[], str]) -> None:
        try:
            self._run_id = start()
        except BaseException as e:  # re-raised in the main thread by wait()
            self._error = e
            mlflow = sys.modules.get("mlflow")  # not imported: no run was started
            if mlflow is not None and mlflow.active_run() is not None:  # its setup failed: it ends FAILED
                from src.tracking import runs

                runs.end_run(e)

    def hold(self, call: Callable[[], None]) -> None:
        """Log now if the run is open in this thread, else once it is."""
        if self.open:
            call()
        else:
            self._held.append(call)

    def wait(self) -> str:
        """The run's id, once it is open: made this thread's active run, what was held logged in order.
        The thread's error, if opening failed."""
        if not self.open:
            assert self._thread is not None
            self._thread.join()
            if self._error is not None:  # raised again at every wait: there is no run
                raise self._error
            import mlflow

            mlflow.start_run(run_id=self._run_id)  # the thread's run, now this thread's active run
            self.open = True
            held, self._held = self._held, []
            for call in held:
                call()
        assert self._run_id is not None
        return self._run_id


@contextlib.contextmanager
def opened(start: Callable[[], str], background: bool = True) -> Iterator[Opening]:
    """The run that `start` opens (in a thread with `background`), ended FINISHED, FAILED or KILLED like
    tracking.run's. `start` starts the run as its thread's active run and returns its id."""
    opening = Opening(start, background)
    try:
        yield opening
    except BaseException as e:
        try:
            opening.wait()
        except BaseException as failed:  # no run to end
            if failed is not e:  # training failed too: its error is raised, the opening's told
                log.error("the run could not be opened either: %s: %s", type(failed).__name__, failed)
            raise e from None
        from src.tracking import runs

        runs.end_run(e)
        raise
    else:
        opening.wait()
        from src.tracking import runs

        runs.end_run()
