"""MLflow's model server on a registered model: started as the README says (`make serve-model`, from a
shell whose PATH lacks the venv), scored over loopback, bad requests answered with 4xx."""

import json
import os
import urllib.error
import urllib.request

import numpy as np
import pytest

from src.data import SAMPLE_PATH
from tests.conftest import free_port, serving

pytestmark = pytest.mark.slow


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_make_serve_model_answers_digits_and_refuses_bad_requests(digit_model):
    port = free_port()
    # PATH without the venv: MLflow starts uvicorn from PATH, and the target puts the venv's first
    path = ":".join(p for p in os.environ.get("PATH", "").split(":") if ".venv" not in p) or "/usr/bin:/bin"
    command = ["make", "--no-print-directory", "serve-model", f"MODEL={digit_model['model']}", f"PORT={port}"]
    env = {"MLFLOW_TRACKING_URI": digit_model["uri"], "PATH": path}
    with serving(command, port, "/ping", env=env, timeout=120):
        url = f"http://127.0.0.1:{port}/invocations"
        sample = np.load(SAMPLE_PATH)
        x, y = sample["x_test"][:64], sample["y_test"][:64]
        status, answer = _post(url, {"inputs": x.tolist()})
        assert status == 200
        p = np.asarray(answer["predictions"])
        assert p.shape == (64, 10)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
        assert (p.argmax(axis=1) == y).mean() > 0.85
        status, answer = _post(url, {"instances": x[:3].tolist()})
        assert status == 200 and np.asarray(answer["predictions"]).shape == (3, 10)

        status, answer = _post(url, {"inputs": np.zeros((2, 27, 28), np.uint8).tolist()})  # wrong shape
        assert status == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE"
        status, answer = _post(url, {"digits": x[:1].tolist()})  # not MLflow's request format
        assert status == 400 and "inputs" in answer["message"]
