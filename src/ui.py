"""The MLflow UI on the project's store: python -m src.ui [--port 5000] [--store URI].

Prints the address of the training runs (the UI otherwise opens on its GenAI overview), then runs
`mlflow ui` on 127.0.0.1 until interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys


def arguments() -> argparse.ArgumentParser:
    """The command's options (its --help; the docs' commands are checked against them)."""
    parser = argparse.ArgumentParser(prog="python -m src.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000, help="the UI's port (default: 5000)")
    parser.add_argument("--host", default="127.0.0.1", help="keep 127.0.0.1 unless you mean to share it")
    parser.add_argument("--store", default=os.environ.get("MLFLOW_TRACKING_URI"), help="default: ./mlruns")
    parser.add_argument(
        "--experiment", default="handwritten-digits", help="the experiment whose runs' address is printed"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)

    from src.apps.tracking_server import without_job_runner
    from src.tracking import records, resolve_uri

    store = resolve_uri(args.store)
    experiment = records.experiment_id(store, args.experiment)
    address = f"http://{args.host}:{args.port}"
    print(f"MLflow UI: {address}  (store: {store})")
    if experiment is not None:
        print(f"training runs: {address}/#/experiments/{experiment}/runs")
    print("Ctrl-C stops it.", flush=True)
    without_job_runner()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store]
    command += ["--host", args.host, "--port", str(args.port), "--workers", "2"]
    os.execv(sys.executable, command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
