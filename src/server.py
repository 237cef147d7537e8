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
import os
import secrets
import sys
from pathlib import Path

from src import cli
from src.apps.tracking_server import (
    ADMIN_PASSWORD,
    DEFAULT_ROOT,
    SECRET_KEY,
    auth_settings,
    check_auth,
    prepare,
    redacted,
    without_job_runner,
)


def arguments() -> argparse.ArgumentParser:
    """The command's options (its --help; the docs' commands are checked against them)."""
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
    parser.add_argument("--port", type=int, default=5000, help="the port (default: 5000)")
    parser.add_argument("--workers", type=int, default=2, help="the server's worker processes (default: 2)")
    return parser


@cli.command()
def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args, extra = parser.parse_known_args(argv)

    backend = args.backend or f"sqlite:///{(DEFAULT_ROOT / 'mlflow.db').absolute()}"
    artifacts = str(Path(args.artifacts or DEFAULT_ROOT / "artifacts").absolute())
    if args.auth:
        check_auth()
    prepare(backend, artifacts)
    if args.auth:
        auth_config, users = auth_settings(backend, artifacts)
    address = f"http://{'127.0.0.1' if args.host == '0.0.0.0' else args.host}:{args.port}"
    print(f"MLflow tracking server on {args.host}:{args.port}")
    print(f"  runs:      {redacted(backend)}")
    print(f"  artifacts: {artifacts}")
    print(f"  log to it: export MLFLOW_TRACKING_URI={address}   (UI: {address})")
    without_job_runner()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend]
    if args.auth:
        os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(auth_config)
        print(f"  logins:    required; users and permissions in {redacted(users)} ({auth_config})")
        print("             clients set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
        if not os.environ.get(SECRET_KEY):
            # signs the UI's forms (CSRF); one per start suffices for one server, see docs/scale.md
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
