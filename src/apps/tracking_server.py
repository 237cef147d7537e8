"""The shared MLflow tracking server around the project's store: its database and artifacts prepared,
its logins (MLflow's basic-auth app, users and permissions in a database beside the runs') and MLflow's
job runner kept off. `python -m src.server` starts it."""

from __future__ import annotations

import importlib.util
import os
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
        from src.tracking.store import create_tables

        create_tables(backend, Path(artifacts).absolute().as_uri())
    except Exception as e:  # a database that cannot be reached or opened, or no driver for it
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"--backend: cannot open {redacted(backend)}: {first}") from None


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


def redacted(uri: str) -> str:
    """A database URI without its password, for messages."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(uri).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:  # not a URL at all: nothing to hide
        return uri
