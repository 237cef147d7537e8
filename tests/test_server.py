"""The shared tracking server: trainings in several processes log to it over HTTP, at the same time."""

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY, run_cli, tracking_server


def database(kind: str, tmp_path: Path, postgresql) -> str:
    return f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}" if kind == "sqlite" else postgresql.database()


def rest(server: str, endpoint: str, body: dict | None = None, **query) -> dict:
    """One call of MLflow's REST API, as any HTTP client would make it."""
    url = f"{server}/api/2.0/mlflow/{endpoint}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_trainings_at_once_log_to_the_server(tmp_path, kind, postgresql):
    artifacts = tmp_path / "server" / "artifacts"
    backend = database(kind, tmp_path, postgresql)
    with tracking_server(tmp_path / "server", backend) as server:
        # the clients see the server only: no shared database or artifact directory
        env = {**os.environ, "MLFLOW_TRACKING_URI": server}
        clients = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "src.train",
                    "backbone=simple_cnn",
                    "augmentation=none",
                    *TINY,
                    "training.epochs=2",
                    f"tracking.run_name=client{i}",
                    f"hydra.run.dir={tmp_path / str(i)}",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            for i in range(2)
        ]
        for client in clients:
            output = client.communicate(timeout=600)[0]
            assert client.returncode == 0, output[-3000:]

        experiment = rest(server, "experiments/get-by-name", experiment_name="handwritten-digits")
        experiment_id = experiment["experiment"]["experiment_id"]
        runs = rest(server, "runs/search", {"experiment_ids": [experiment_id]})["runs"]
        by_name = {run["info"]["run_name"]: run for run in runs}
        assert set(by_name) == {"client0", "client1"}
        for run in by_name.values():
            run_id = run["info"]["run_id"]
            assert run["info"]["status"] == "FINISHED"
            metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
            assert 0 <= metrics["test_accuracy"] <= 1
            history = rest(server, "metrics/get-history", run_id=run_id, metric_key="loss")["metrics"]
            assert sorted(m["step"] for m in history) == [0, 1]
            listed = {f["path"] for f in rest(server, "artifacts/list", run_id=run_id)["files"]}
            assert {"confusion_matrix", "learning_curves.png", "model_summary.txt"} <= listed
        versions = rest(server, "model-versions/search", filter="name='handwritten-digits'")
        assert sorted(v["run_id"] for v in versions["model_versions"]) == sorted(
            run["info"]["run_id"] for run in runs
        )
    # the artifacts went through the server into its own directory
    assert list(artifacts.rglob("MLmodel"))


def test_a_server_on_a_database_it_cannot_open_says_so():
    result = run_cli("src.server", "--backend", "postgresql://someone:secret@127.0.0.1:1/mlflow", timeout=60)
    assert result.returncode == 2
    assert "cannot open postgresql://someone:***@127.0.0.1:1/mlflow" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr
