"""A shared MLflow tracking server: python -m src.server [--backend URI] [--artifacts DIR] [--port 5000].

Runs from several processes and machines log to it over HTTP (MLFLOW_TRACKING_URI=http://HOST:PORT).
It keeps runs in a database (SQLite under mlruns/server/ by default, or PostgreSQL) and the artifacts in
its own directory, which clients reach through the server: they need no access to its disk. The same
address serves the UI. Options it does not know go to `mlflow server` as they are.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from src import UserError

DEFAULT_ROOT = Path("mlruns") / "server"


def without_job_runner() -> None:
    """MLflow's job runner (GenAI jobs: prompt optimisation, scorers) starts a handful of worker processes
    of about 250 MB each with `mlflow server` and `mlflow ui`; this project never uses it.
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true brings it back."""
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")


def prepare(backend: str, artifacts: str) -> None:
    """Create or migrate the database once, before the server's workers start (they would race)."""
    import sqlalchemy

    if backend.startswith("sqlite:///"):
        Path(backend.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:  # fail in seconds, not after MLflow's ten retries
        engine = sqlalchemy.create_engine(backend)
        for attempt in range(3):
            try:
                with engine.connect():
                    break
            except sqlalchemy.exc.OperationalError:
                if attempt == 2:
                    raise
                time.sleep(1 + attempt)
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        SqlAlchemyStore(backend, Path(artifacts).absolute().as_uri())
    except Exception as e:  # a database that cannot be reached or opened, or no driver for it
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"--backend: cannot open {_redacted(backend)}: {first}") from None


def _redacted(uri: str) -> str:
    """A database URI without its password, for messages."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(uri).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:  # not a URL at all: nothing to hide
        return uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.server", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        default=None,
        help="database URI: sqlite:///path.db or postgresql://user:password@host:5432/db "
        f"(default: sqlite in {DEFAULT_ROOT}/)",
    )
    parser.add_argument(
        "--artifacts", default=None, help=f"artifact directory (default: {DEFAULT_ROOT}/artifacts)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="0.0.0.0 to serve other machines (no authentication)"
    )
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    args, extra = parser.parse_known_args(argv)

    backend = args.backend or f"sqlite:///{(DEFAULT_ROOT / 'mlflow.db').absolute()}"
    artifacts = str(Path(args.artifacts or DEFAULT_ROOT / "artifacts").absolute())
    try:
        prepare(backend, artifacts)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    address = f"http://{'127.0.0.1' if args.host == '0.0.0.0' else args.host}:{args.port}"
    print(f"MLflow tracking server on {args.host}:{args.port}")
    print(f"  runs:      {_redacted(backend)}")
    print(f"  artifacts: {artifacts}")
    print(f"  log to it: export MLFLOW_TRACKING_URI={address}   (UI: {address})")
    print("Ctrl-C stops it.", flush=True)
    without_job_runner()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend]
    command += ["--artifacts-destination", artifacts, "--serve-artifacts"]
    command += ["--host", args.host, "--port", str(args.port), "--workers", str(args.workers), *extra]
    os.execv(sys.executable, command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
