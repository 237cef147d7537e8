"""A shared MLflow tracking server: python -m src.server [--backend URI] [--artifacts DIR] [--port 5000].

Runs from several processes and machines log to it over HTTP (MLFLOW_TRACKING_URI=http://HOST:PORT).
It keeps runs in a database (SQLite under mlruns/server/ by default, or PostgreSQL) and the artifacts in
its own directory, which clients reach through the server: they need no access to its disk. The same
address serves the UI. Options it does not know go to `mlflow server` as they are.

With --auth it asks for logins: MLflow's basic-auth app, its users and permissions in a database beside
the runs' (see `auth_settings`), the admin's password from MLFLOW_AUTH_ADMIN_PASSWORD.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import sys
import time
from pathlib import Path

from src import UserError

DEFAULT_ROOT = Path("mlruns") / "server"
ADMIN_PASSWORD = "MLFLOW_AUTH_ADMIN_PASSWORD"
SECRET_KEY = "MLFLOW_FLASK_SERVER_SECRET_KEY"
# what basic_auth.ini of MLflow before 3.x shipped: public, so MLflow refuses it too (GHSA-gq3w-7jj3-x7gr)
_OLD_DEFAULT_PASSWORD = "password1234"


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


def check_auth() -> None:
    """What --auth needs before anything starts: MLflow's auth extra, and an admin password MLflow accepts."""
    if importlib.util.find_spec("flask_wtf") is None:
        raise UserError(
            "--auth needs MLflow's auth extra (Flask-WTF): make install, or pip install 'mlflow[auth]'"
        )
    password = os.environ.get(ADMIN_PASSWORD, "")
    if not password:
        raise UserError(f"--auth: set {ADMIN_PASSWORD} to the admin's password (12 characters or more)")
    if password == _OLD_DEFAULT_PASSWORD:
        raise UserError(
            f"--auth: {ADMIN_PASSWORD} is MLflow's old default password, known to all: choose another"
        )
    if len(password) < 12:  # MLflow's own rule for passwords
        raise UserError(f"--auth: {ADMIN_PASSWORD} is shorter than 12 characters")


def auth_settings(backend: str, artifacts: str) -> tuple[Path, str]:
    """MLflow's basic_auth.ini for this server, written beside its database; returns it and the users'
    database.

    The users and their permissions are kept beside the runs on purpose (MLflow's default is a file in
    whatever directory the server starts from): in basic_auth.db beside a SQLite store, in the same
    database for PostgreSQL (MLflow's auth tables have their own names and migrations). Everyone
    logged in may read every experiment and model (`default_permission = READ`); writing needs EDIT,
    which creators get on what they create and an admin grants. MLFLOW_AUTH_CONFIG_PATH, when set,
    names a file of your own instead.
    """
    import configparser

    if backend.startswith("sqlite:///"):
        folder = Path(backend.removeprefix("sqlite:///")).absolute().parent
        users = f"sqlite:///{folder / 'basic_auth.db'}"
    else:
        folder, users = Path(artifacts).absolute().parent, backend
    if os.environ.get("MLFLOW_AUTH_CONFIG_PATH"):
        path = Path(os.environ["MLFLOW_AUTH_CONFIG_PATH"])
        config = configparser.ConfigParser()
        config.read(path)
        return path, config.get("mlflow", "database_uri", fallback="?")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "basic_auth.ini"
    path.touch(mode=0o600)  # a PostgreSQL URI holds the database's password
    path.chmod(0o600)
    path.write_text(
        "# Written by python -m src.server --auth at every start: edit a copy, and point\n"
        "# MLFLOW_AUTH_CONFIG_PATH at it, to change these.\n"
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {users.replace('%', '%%')}\n"  # configparser reads % as interpolation
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return path, users


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
        "--host",
        default="127.0.0.1",
        help="0.0.0.0 to serve other machines (anyone who reaches the port, unless --auth)",
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help=f"ask for logins (MLflow's basic-auth app); the admin's password from {ADMIN_PASSWORD}",
    )
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    args, extra = parser.parse_known_args(argv)

    backend = args.backend or f"sqlite:///{(DEFAULT_ROOT / 'mlflow.db').absolute()}"
    artifacts = str(Path(args.artifacts or DEFAULT_ROOT / "artifacts").absolute())
    try:
        if args.auth:
            check_auth()
        prepare(backend, artifacts)
        if args.auth:
            auth_config, users = auth_settings(backend, artifacts)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    address = f"http://{'127.0.0.1' if args.host == '0.0.0.0' else args.host}:{args.port}"
    print(f"MLflow tracking server on {args.host}:{args.port}")
    print(f"  runs:      {_redacted(backend)}")
    print(f"  artifacts: {artifacts}")
    print(f"  log to it: export MLFLOW_TRACKING_URI={address}   (UI: {address})")
    without_job_runner()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend]
    if args.auth:
        os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(auth_config)
        print(f"  logins:    required; users and permissions in {_redacted(users)} ({auth_config})")
        print("             clients set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
        if not os.environ.get(SECRET_KEY):
            # signs the UI's forms (CSRF); one per start suffices for one server, see the README
            os.environ[SECRET_KEY] = secrets.token_hex(32)
            print(f"  {SECRET_KEY} not set: a random key for this start")
        command += ["--app-name", "basic-auth"]
    print("Ctrl-C stops it.", flush=True)
    command += ["--artifacts-destination", artifacts, "--serve-artifacts"]
    command += ["--host", args.host, "--port", str(args.port), "--workers", str(args.workers), *extra]
    os.execv(sys.executable, command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
