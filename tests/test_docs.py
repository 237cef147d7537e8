"""The docs a newcomer reads: a quiet terminal, --help that says what the keys mean, documented commands
that compose, and a results page that is the bench's JSON, not a copy of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from src import config

ROOT = config.CONF_DIR.parent

# TensorFlow's start-up lines on a machine without a GPU (src/__init__.py: STARTUP_NOTES, CUDA_PROBE)
NOISE = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "failed call to cuInit",
    "rebuild TensorFlow with the appropriate compiler flags",
    "This TensorFlow binary is optimized",
)


def clean_env(tmp_path, **extra: str) -> dict:
    """A shell with nothing set but PATH and an empty HOME (no TF_CPP_MIN_LOG_LEVEL, no CUDA_*)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "HOME": str(home), **extra}


def python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


STARTS_TENSORFLOW = "import src, tensorflow as tf; print(float(tf.constant(1.0) + 1))"


def test_tensorflow_starts_quietly_and_its_own_errors_stay(tmp_path):
    # without the project's setting the lines are there (the test can fail)
    loud = python(STARTS_TENSORFLOW, clean_env(tmp_path, HANDWRITTEN_DIGITS_TF_NOTES="1"))
    assert loud.returncode == 0 and "failed call to cuInit" in loud.stderr
    assert "oneDNN custom operations are on" in loud.stderr
    quiet = python(STARTS_TENSORFLOW, clean_env(tmp_path))
    assert quiet.returncode == 0 and quiet.stdout.strip() == "2.0"
    assert not [line for line in NOISE if line in quiet.stderr], quiet.stderr
    # a GPU asked for that cannot be reached is an error worth seeing: the CUDA probe's line stays
    asked = python(STARTS_TENSORFLOW, clean_env(tmp_path, CUDA_VISIBLE_DEVICES="0"))
    assert "failed call to cuInit" in asked.stderr
    assert "oneDNN custom operations are on" not in asked.stderr
    # what else is written while TensorFlow loads is kept
    other = python(
        "import os, src; os.write(2, b'E0000 a real error\\n'); import tensorflow", clean_env(tmp_path)
    )
    assert "E0000 a real error" in other.stderr


@pytest.mark.slow
def test_predict_on_a_picture_prints_only_its_reading(digit_model, tmp_path):
    digits = np.load(ROOT / "src" / "data" / "mnist_sample.npz")
    x, y = digits["x_test"], digits["y_test"]
    picture = 255 - np.kron(x[0], np.ones((4, 4), np.uint8))  # black on white, 112 pixels
    page = np.full((160, 200), 255, np.uint8)
    page[24:136, 44:156] = picture
    Image.fromarray(page).save(tmp_path / "digit.png")
    result = subprocess.run(
        [sys.executable, "-m", "src.predict", f"model={digit_model['model']}", "images=digit.png"],
        cwd=tmp_path,
        env=clean_env(tmp_path, MLFLOW_TRACKING_URI=digit_model["uri"]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"digit.png: {y[0]}")
    assert not [line for line in NOISE if line in result.stderr], result.stderr


def test_the_results_page_is_the_bench_json_rendered():
    """docs/results.md is what `make bench` writes from docs/results/*.json: a figure edited by hand in
    either shows here."""
    from src import bench

    docs = ROOT / "docs"
    files = {mode: bench.results_json(docs, mode) for mode in bench.MODES}
    runs = {mode: json.loads(path.read_text()) for mode, path in files.items() if path.is_file()}
    assert runs, "no bench JSON beside docs/results.md"
    page = (docs / "results.md").read_text()
    assert page == bench.results_page(runs), "docs/results.md is not its JSON: python -m src.bench --page"
    for r in runs.values():  # every table says where and when it was measured
        assert r["date"] in page and r["commit"] in page and r["machine"]["cpus"]


def test_a_bench_writes_its_json_and_the_page(tmp_path):
    from src import bench

    r = {
        "mode": "quick", "date": "2026-12-07 10:00:00", "commit": "abc1234", "full_mnist": None,
        "machine": {"cpus": 2, "processor": "x86_64", "cpu": "Some CPU (family 1, model 2)"},
        "startup_s": 6.25, "latency_p50_ms": 31.0, "bench_s": 500.0,
    }  # fmt: skip
    bench.publish(r, tmp_path)
    page = (tmp_path / "results.md").read_text()
    assert (
        "Recorded 2026-12-07 10:00:00 on 2 cores of Some CPU (family 1, model 2), at commit abc1234" in page
    )
    assert "| command start to first training step (s) | 6.25 | <= 10.0 | yes |" in page
    assert "| single-digit prediction p50 (ms) | 31 | <= 20.0 | no |" in page
    assert "No run of this mode is recorded yet: `make bench-full" in page
    assert json.loads(bench.results_json(tmp_path, "quick").read_text())["startup_s"] == 6.25
    # a figure edited by hand on the page no longer matches its JSON
    edited = page.replace("| 6.25 |", "| 5.25 |")
    runs = {"quick": json.loads(bench.results_json(tmp_path, "quick").read_text())}
    assert edited != bench.results_page(runs) and page == bench.results_page(runs)
