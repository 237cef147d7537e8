import atexit
import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# The tests, and every process they start, run in a home of their own: a new empty directory, removed
# afterwards, however pytest was started. Tokens, caches and downloads in the user's home cannot be what
# makes a test pass, and no test writes there (Keras's keras.json, MLflow's telemetry file, matplotlib's
# font cache, Ray's token). Settings that would point elsewhere, or at the user's own store, server or
# cluster, are dropped: a test that needs one sets it.
HOME = Path(tempfile.mkdtemp(prefix="home-"))
atexit.register(shutil.rmtree, HOME, ignore_errors=True)
os.environ["HOME"] = str(HOME)
for _name in list(os.environ):
    if _name.startswith(("XDG_", "MLFLOW_", "RAY_")) or _name in ("KERAS_HOME", "MPLCONFIGDIR"):
        del os.environ[_name]


@pytest.fixture(autouse=True)
def _no_model_code_left_on_the_path():
    """Loading a reading model (`mlflow.pyfunc.load_model`) puts the code it carries, a copy of part of
    `src/`, first on `sys.path`, for the rest of the process. A process spawned later (a test's own pool)
    then imported `src` from that copy, which has no `src.reading.folder`, and failed, after whichever
    test of the same worker had loaded one."""
    path = list(sys.path)
    yield
    sys.path[:] = path


@pytest.fixture(autouse=True)
def _no_registry_left_behind():
    """`mlflow.set_registry_uri` also sets MLFLOW_REGISTRY_URI in the environment, for the processes a test
    starts; left there, the next test's commands resolved `models:/...` in that test's store, whatever
    MLFLOW_TRACKING_URI they were given (a served model read 78% of digits: another store's version 1).
    In this process too: a test that sets only the tracking URI resolved `models:/...` through the
    registry URI an earlier test left, a server that earlier test had stopped (seen with the test files
    shared between two workers, in another order)."""
    yield
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    if "mlflow" in sys.modules:  # a test that never imported MLflow left nothing in it
        sys.modules["mlflow"].set_registry_uri(None)  # None: follow the tracking URI again


def pytest_report_header(config) -> str:
    return f"HOME for the tests: {HOME} (new and empty, removed afterwards)"


# Tiny, offline settings for runs that only check plumbing. No reading model beside the classifier and no
# digit score: they are tested where they are the subject (digit_model, test_serve, test_digit_score, the
# smoke sweep), and through a server with logins the reading model's dozen requests cost as much as the
# classifier's.
TINY = [
    "data=mnist_sample",
    "data.train_limit=256",
    "data.test_limit=128",
    "training.epochs=1",
    "training.verbose=0",
    "tracking.reader_model=null",
    "training.digit_score.sample=0",
]


@pytest.fixture
def compose_cfg():
    """Compose the real config with overrides, as `python -m src.train` would."""

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="train", overrides=list(overrides))

    return _compose


@functools.cache
def _empty_store() -> Path:
    """An empty MLflow SQLite database, created once per session: MLflow builds a new one in seconds
    (dozens of schema migrations), a copy of this one opens at once."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    root = Path(tempfile.mkdtemp(prefix="store"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    SqlAlchemyStore(f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri())
    return root / "mlflow.db"


def new_store(directory: Path) -> str:
    """The URI of a new, empty SQLite store in directory (created), already at MLflow's current schema.
    (Tests of how a store is first created use a plain path instead.)"""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_empty_store(), directory / "mlflow.db")
    return f"sqlite:///{directory / 'mlflow.db'}"


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty MLflow store for this test, seen by this process and the ones it starts."""
    import mlflow

    uri = new_store(tmp_path / "store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri


SMOKE_SWEEP = ["-m", "+experiment=smoke", "backbone=vgg16,vgg19,resnet50", "backbone.weights=null"]


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory):
    """The smoke sweep over the three backbones (docs/sweeps.md), run once into its own store."""
    root = tmp_path_factory.mktemp("smoke_sweep")
    uri = new_store(root)
    result = run_cli(
        "src.train", *SMOKE_SWEEP, f"hydra.sweep.dir={root / 'sweep'}", env={"MLFLOW_TRACKING_URI": uri}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {"uri": uri, "stdout": result.stdout, "stderr": result.stderr, "dir": root}


def _preset_model(root: Path, *overrides: str, read: bool = True) -> dict:
    """The fast_baseline preset trained on the offline sample into a store of its own under `root`. With
    `read`, read once as a user's first read does (src.apps.classifier): its digit score fitted and kept
    in its run, its reading model registered (training.digit_score.when=read, the default)."""
    from src.train import train

    uri = new_store(root)
    overrides = (
        "+experiment=fast_baseline", "data=mnist_sample", "training.epochs=10", "training.verbose=0",
        f"tracking.uri={uri}", f"training.feature_cache_dir={root / 'cache'}", *overrides,
    )  # fmt: skip
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    scores = train(cfg)
    model = "models:/handwritten-digits/1"
    if read:
        from src.apps.classifier import Classifier

        Classifier(model, uri)
    return {"uri": uri, "model": model, "test_accuracy": scores["test_accuracy"]}


@pytest.fixture(scope="session")
def digit_model(tmp_path_factory):
    """The fast_baseline preset trained on the offline sample (about 97% accurate, in seconds),
    registered in its own store."""
    return _preset_model(tmp_path_factory.mktemp("digit_model"))


@pytest.fixture(scope="session")
def digit_model_without_non_digits(tmp_path_factory):
    """digit_model trained on digits alone (training.non_digits off): a model whose probabilities are
    sure of many non-digits, for what the digit score does on its own."""
    return _preset_model(
        tmp_path_factory.mktemp("digit_model_without_non_digits"),
        "training.non_digits.share=0",
        "training.non_digits.as_read=0",
    )


def use_store(uri: str) -> None:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "experiments" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    """A real headless Chromium (Debian's, installed by `make install`) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), (
        "Chromium is missing: `make install` installs it (apt-get install chromium)"
    )
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(command: list[str], port: int, health: str, env: dict | None = None, timeout: float = 90):
    """Start a server in its own process group, wait until `health` answers, stop it afterwards."""
    import signal
    import time
    import urllib.request

    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=2):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"server did not start: {log.read().decode()[-3000:]}") from None
                    time.sleep(0.5)
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:  # a test's server has nothing to save: a few seconds to stop, then it is killed
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


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


@contextlib.contextmanager
def tracking_server(root: Path, backend: str | None = None):
    """`python -m src.server` on a free loopback port with its database and artifacts under root;
    yields its address."""
    port = free_port()
    command = [sys.executable, "-m", "src.server", "--port", str(port)]
    command += [
        "--backend",
        backend or f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts",
        str(root / "artifacts"),
    ]
    with serving(command, port, "/health"):
        yield f"http://127.0.0.1:{port}"


class PostgreSQL:
    """A throwaway PostgreSQL cluster from Debian's packages (installed by `make install`) on loopback,
    started on first use; each `database()` is a new empty database in it."""

    def __init__(self, root: Path):
        self.root, self.port, self.count = root, None, 0
        # PostgreSQL refuses to run as root: as root, run it as Debian's postgres user (runuser is in sbin,
        # which a root shell's PATH need not hold)
        runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") or "runuser"
        self.as_user = [runuser, "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *command):
        result = subprocess.run([*self.as_user, *command], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr

    def _start(self) -> None:
        import glob
        import shutil

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        assert bins, "PostgreSQL is missing: `make install` installs it (apt-get install postgresql)"
        self.bindir = Path(bins[-1]).parent
        if self.as_user:
            shutil.chown(self.root, "postgres")
        self.port = free_port()
        data = self.root / "data"
        self._run(self.bindir / "initdb", "-D", data, "-U", "mlflow", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(self.bindir / "pg_ctl", "-D", data, "-o", options, "-l", self.root / "log", "-w", "start")

    def database(self) -> str:
        if self.port is None:
            self._start()
        self.count += 1
        name = f"mlflow{self.count}"
        self._run(self.bindir / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "mlflow", name)
        return f"postgresql://mlflow@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.port is not None:
            subprocess.run(
                [*self.as_user, self.bindir / "pg_ctl", "-D", self.root / "data", "-m", "immediate", "stop"],
                capture_output=True,
            )


@pytest.fixture(scope="session")
def postgresql():
    """One PostgreSQL cluster for the session (started when a test first asks for a database)."""
    import shutil

    root = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))  # short: the socket path has a length limit
    cluster = PostgreSQL(root)
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)
