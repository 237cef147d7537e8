import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Tiny, offline settings for runs that only check plumbing.
TINY = [
    "data=mnist_sample",
    "data.train_limit=256",
    "data.test_limit=128",
    "training.epochs=1",
    "training.verbose=0",
]


@pytest.fixture
def compose_cfg():
    """Compose the real config with overrides, as `python -m src.train` would."""

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="train", overrides=list(overrides))

    return _compose


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty MLflow store for this test, seen by this process and the ones it starts."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri


@pytest.fixture
def offline(monkeypatch):
    """No network and no cache: every Keras download fails the way Keras reports it."""
    import keras
    from keras.src.utils import file_utils

    def refuse(fname, origin=None, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", refuse)  # used by keras.applications
    monkeypatch.setattr(keras.utils, "get_file", refuse)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run `python -m ...` as a user would, in the project's environment."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_python(code: str, timeout: int = 300):
    """Run a Python snippet in a fresh process (as another program using the model would)."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
