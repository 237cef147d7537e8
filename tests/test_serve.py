"""MLflow's model server on a registered model and on its reading model: started as docs/serving.md says
(`make serve-model`, from a shell whose PATH lacks the venv), scored over loopback, bad requests answered
with 4xx; `mlflow models predict`; the reading model loaded where this repository is not importable."""

import base64
import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from src.data import SAMPLE_PATH
from tests.conftest import ROOT, free_port, serving
from tests.test_predict import _compose_number, _correctly_read_digits

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


def _make_serve_model(digit_model, model: str):
    """`make serve-model MODEL=...` from a shell whose PATH lacks the venv: (command, port, env)."""
    port = free_port()
    # MLflow starts uvicorn from PATH, and the target puts the venv's first
    path = ":".join(p for p in os.environ.get("PATH", "").split(":") if ".venv" not in p) or "/usr/bin:/bin"
    command = ["make", "--no-print-directory", "serve-model", f"MODEL={model}", f"PORT={port}"]
    return command, port, {"MLFLOW_TRACKING_URI": digit_model["uri"], "PATH": path}


def test_make_serve_model_answers_digits_and_refuses_bad_requests(digit_model):
    command, port, env = _make_serve_model(digit_model, digit_model["model"])
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
        status, answer = _post(url, {"inputs": (x[:1].astype(int) + 250).tolist()})  # beyond uint8
        assert status == 400 and "out of bounds for uint8" in answer["message"]
        status, answer = _post(url, {"inputs": [[["dark"] * 28] * 28]})  # not numbers
        assert status == 400 and "invalid literal" in answer["message"]
        frame = {"dataframe_split": {"columns": ["digits"], "data": [[x[0].tolist()]]}}
        status, answer = _post(url, frame)  # a table cannot hold a 28x28 tensor: refused, as documented
        assert status == 400 and "Failed to enforce schema" in answer["message"]


def test_mlflow_models_predict_scores_a_file_of_digits(digit_model, tmp_path):
    sample = np.load(SAMPLE_PATH)
    (tmp_path / "digits.json").write_text(json.dumps({"inputs": sample["x_test"][:16].tolist()}))
    command = [
        os.path.join(os.path.dirname(sys.executable), "mlflow"), "models", "predict",
        "-m", digit_model["model"], "-i", str(tmp_path / "digits.json"), "-t", "json",
        "-o", str(tmp_path / "out.json"), "--env-manager", "local",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": digit_model["uri"]}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    p = np.asarray(json.loads((tmp_path / "out.json").read_text())["predictions"])
    assert p.shape == (16, 10) and (p.argmax(axis=1) == sample["y_test"][:16]).mean() > 0.85


def _picture(digit_model, number: list[int]) -> str:
    sizes = [60, 90, 70, 80][: len(number)]
    digits = _correctly_read_digits(digit_model["model"], digit_model["uri"], number, sizes)
    buffer = io.BytesIO()
    Image.fromarray(_compose_number(digits, sizes)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_reading_model_serves_pictures_and_refuses_what_is_not_one(digit_model):
    import mlflow

    client = mlflow.MlflowClient(digit_model["uri"], digit_model["uri"])
    reader = client.get_model_version_by_alias("handwritten-digits-reader", "champion")
    champion = client.get_model_version_by_alias("handwritten-digits", "champion")
    assert reader.tags["classifier"] == f"handwritten-digits/{champion.version}"  # the alias follows

    picture = _picture(digit_model, [4, 0, 7, 2])
    command, port, env = _make_serve_model(digit_model, "models:/handwritten-digits-reader@champion")
    with serving(command, port, "/ping", env=env, timeout=120):
        url = f"http://127.0.0.1:{port}/invocations"
        status, answer = _post(url, {"inputs": [picture, "data:image/png;base64," + picture]})
        assert status == 200, answer
        first, second = answer["predictions"]
        assert first["number"] == "4072" and first["text"] == "4072" and first["sure"]
        assert len(first["digits"]) == 4 and len(first["digits"][0]["top"]) == 3
        assert {"digit", "probability", "top", "box", "sure"} <= set(first["digits"][0]) and second == first
        frame = {"dataframe_split": {"columns": ["image"], "data": [[picture]]}, "params": {"top": 10}}
        status, answer = _post(url, frame)
        assert status == 200 and answer["predictions"][0]["number"] == "4072"
        top = answer["predictions"][0]["digits"][0]["top"]
        assert len(top) == 10 and abs(sum(t["probability"] for t in top) - 1) < 1e-4

        status, answer = _post(url, {"inputs": ["not base64!"]})
        assert status == 400 and "picture 0: not base64" in answer["message"]
        status, answer = _post(url, {"inputs": [picture, base64.b64encode(b"%PDF-1.4").decode()]})
        assert status == 400 and "picture 1: not an image" in answer["message"]
        status, answer = _post(url, {"inputs": [picture], "params": {"top": 11}})
        assert status == 400 and "params.top" in answer["message"]


def test_the_reading_model_loads_without_this_repository(digit_model, tmp_path):
    """In a fresh process outside the repository with the project's install hidden, the reading model
    brings its own code."""
    code = f"""
import sys
sys.meta_path = [f for f in sys.meta_path if "Editable" not in type(f).__name__]
import mlflow, pandas as pd
mlflow.set_registry_uri({digit_model["uri"]!r})
model = mlflow.pyfunc.load_model("models:/handwritten-digits-reader/1")
print(sys.modules["src.reading.reader_model"].__file__)
print(model.predict(pd.DataFrame({{"image": [{_picture(digit_model, [3, 5])!r}]}}))[0]["number"])
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    where, number = result.stdout.split()[-2:]
    assert not where.startswith(str(ROOT)) and where.endswith("code/src/reading/reader_model.py")
    assert number == "35"
