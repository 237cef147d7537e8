"""handwritten-digits: experiment-tracked recognition of hand-written digits."""

from __future__ import annotations

import contextlib
import glob
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import importlib.machinery
    import types
    from collections.abc import Sequence

# When the command started (as near as Python lets us see it): startup time is measured from here.
STARTED = time.time()

# TensorFlow's C++ log after start-up: warnings and errors, not its notes.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# MLflow's progress bars for artifacts it copies (a model logged or loaded): a screenful of bars for
# files of a few megabytes, in every command that registers or reads a model. True brings them back.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

# What TensorFlow's C++ side prints while it loads, whatever TF_CPP_MIN_LOG_LEVEL says (it logs before
# its logging is set up): notes on oneDNN, CPU instructions and a missing CUDA driver, none of them
# something to act on. Other lines printed then are kept.
STARTUP_NOTES = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I0000 .*\] oneDNN custom operations are on"
    r"|I0000 .*\] Could not find cuda drivers on your machine"
    r"|I0000 .*\] This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"
)
# Where no NVIDIA device exists, TensorFlow's CUDA probe fails with an ERROR line that says only that.
CUDA_PROBE = re.compile(r"E0000 .*\] failed call to cuInit: ")


def no_nvidia_device() -> bool:
    """No NVIDIA device on this machine and none asked for (CUDA_VISIBLE_DEVICES unset)."""
    return "CUDA_VISIBLE_DEVICES" not in os.environ and not glob.glob("/dev/nvidia[0-9]*")


@contextlib.contextmanager
def startup_notes_dropped(drop: re.Pattern[str]) -> Iterator[None]:
    """Lines written to the process's stderr (file descriptor 2, where C++ writes) inside are held, and
    those `drop` matches are left out when the rest is written at the end."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not drop.match(line))
            if kept:
                os.write(2, kept.encode())


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """The first `import tensorflow` (wherever it happens) runs inside startup_notes_dropped, and on a
    machine without an NVIDIA device lists the devices there too, so the CUDA probe's line is dropped
    with the rest. Lists only: logical devices and threads can still be configured afterwards.

    It also runs without scikit-learn in sight, unless something imported it before: Keras imports it
    for its scikit-learn wrappers (keras.wrappers, which this project does not use, and which then say
    scikit-learn is missing), 0.8 s of every command's start-up. scikit-learn imports as usual afterwards
    (the digit score, calibration's tests)."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # the other finders find it (a look-up without an import keeps the hook)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module
        probe_too = no_nvidia_device()
        drop = STARTUP_NOTES
        if probe_too:
            drop = re.compile(f"{STARTUP_NOTES.pattern}|{CUDA_PROBE.pattern}")

        def exec_module(module: types.ModuleType) -> None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self)
            hidden = "sklearn" not in sys.modules
            if hidden:
                sys.modules["sklearn"] = None  # type: ignore[assignment]  # `import sklearn`: ImportError
            try:
                with startup_notes_dropped(drop):
                    load(module)
                    if probe_too:
                        module.config.list_physical_devices()
            finally:
                if hidden and sys.modules.get("sklearn", 0) is None:
                    del sys.modules["sklearn"]

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if "tensorflow" not in sys.modules and os.environ.get("HANDWRITTEN_DIGITS_TF_NOTES") != "1":
    sys.meta_path.insert(0, _QuietTensorFlow())


class UserError(Exception):
    """A mistake the user can fix (bad override, missing file, strict mode): one line, non-zero exit."""
