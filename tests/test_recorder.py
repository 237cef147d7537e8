"""The domain returns, tracking records: the route, the fit, its scores and the digit score come back as
results (src/results.py) with no store at all, and the recorder (src/tracking/recorder.py) writes given
results to a store, where they read back under the names a run has always had."""

import json

import mlflow
import numpy as np
import pytest

from src import results
from tests.conftest import TINY, run_python

# a fresh process, no store anywhere (no MLFLOW_TRACKING_URI, a working directory of its own): the route,
# a fit of one epoch, its scores and a digit score; MLflow must not even be imported
WITHOUT_A_STORE = """
import json, os, sys
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.chdir({cwd!r})
from src.config import compose
from src.data import load_digits
from src.models import networks
from src.training import fit, routes
from src.training.digit_score import cut_crops, fit_digit_score, record

cfg = compose({overrides!r})
digits = load_digits(cfg.data)
fit.set_seed(cfg.training)
network = networks.build_model(cfg)
route = routes.choose(cfg, network, digits)
training = fit.fit_route(cfg, route, digits, None, {{}})
train_scores, validation, temperature = fit.score_training(cfg, network, route, digits)
score = fit_digit_score(network.model, cut_crops(digits, 60, seed=0), keep=0.9, hidden=4)
print("RESULT " + json.dumps({{
    "route": route.name, "why": route.why, "cache": route.feature_cache.state,
    "types": [type(t).__name__ for t in (route.feature_cache, training, train_scores, validation)],
    "seconds": training.seconds, "xla": training.xla, "steps": training.steps, "pruned": training.pruned,
    "epochs": len(training.history["loss"]), "val_accuracy": validation.accuracy,
    "train_accuracy": train_scores.accuracy, "splits": [train_scores.split, validation.split],
    "temperature": temperature, "score": record(score).metrics, "fitted_on": record(score).fitted_on,
    "mlflow": "mlflow" in sys.modules, "files": sorted(os.listdir(".")),
}}))
"""


@pytest.mark.slow
def test_the_route_the_fit_and_the_digit_score_need_no_store(tmp_path):
    overrides = [*TINY, "backbone=simple_cnn", f"training.feature_cache_dir={tmp_path / 'cache'}"]
    (tmp_path / "cwd").mkdir()
    result = run_python(WITHOUT_A_STORE.format(cwd=str(tmp_path / "cwd"), overrides=overrides))
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    found = json.loads(line.removeprefix("RESULT "))
    assert found["route"] == "exact" and found["why"] and found["cache"] == f"off: {found['why']}"
    assert found["types"] == ["FeatureCache", "Training", "Evaluation", "Evaluation"]
    assert found["seconds"] > 0 and found["xla"] is False and found["steps"] == 256 // 32
    assert found["epochs"] == 1 and found["pruned"] is None
    assert found["splits"] == ["train", "validation"]
    assert 0 <= found["val_accuracy"] <= 1 and 0 <= found["train_accuracy"] <= 1
    assert found["temperature"] is None or found["temperature"] > 0
    assert 0 < found["score"]["digit_score_val_kept"] <= 1 and "digit_score_threshold" in found["score"]
    assert found["fitted_on"]["digits"] > 0 and found["fitted_on"]["non_digits"]
    assert found["mlflow"] is False, "MLflow was imported by the domain"
    assert found["files"] == []  # no ./mlruns, nothing written where it ran


def _results() -> tuple[results.Setup, results.Evaluation]:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (30, 28, 28), dtype=np.uint8), np.arange(30) % 10
    data = results.Data(
        "made", "here", "0123456789abcdef", {"train": 10, "validation": 10, "test": 10},
        {"training": (x[:10], y[:10]), "validation": (x[10:20], y[10:20]), "test": (x[20:], y[20:])},
    )  # fmt: skip
    setup = results.Setup(
        {"total_params": 1000, "trainable_params": 10}, data, 1, ["/CPU:0"], ["data: offline"],
        ("float32", "training.precision=float32"), ("models:/handwritten-digits/1", "abc"),
    )  # fmt: skip
    probabilities = np.full((10, 10), 0.05, np.float32)
    probabilities[np.arange(10), [0, 1, 2, 3, 4, 5, 6, 7, 8, 0]] = 0.55  # the last digit, a 9, read as 0
    return setup, results.Evaluation("test", y[20:], probabilities)


def test_the_recorder_writes_what_it_is_given_and_it_reads_back(store, compose_cfg):
    from src.tracking.recorder import Recorder

    cfg = compose_cfg("tracking.run_name=recorded", "tracking.experiment=recorder")
    setup, test = _results()
    calibration = results.Calibration(
        1.5, {"temperature": 1.5, "val_ece_before": 0.2, "val_ece": 0.1, "test_ece_before": 0.3,
              "test_ece": 0.15}, {"test": {"before": [(0.9, 0.8, 10)], "after (T=1.50)": [(0.8, 0.8, 10)]}},
    )  # fmt: skip
    score = results.DigitScoreRecord(
        {"digit_score_threshold": 0.4, "digit_score_val_kept": 0.98}, {"digits": 5, "non_digits": {"a": 5}},
        {"threshold": 0.4}, {"digit_score": {"threshold": 0.4}},
    )  # fmt: skip
    with Recorder(cfg).opened(setup) as recorder:
        recorder.route("cached", "a frozen backbone", results.FeatureCache("hit", 1.25, 0.5))
        recorder.first_step(3.5)
        for epoch, loss in enumerate((1.0, 0.75)):
            recorder.epoch(epoch, {"loss": loss, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5})
        recorder.training(results.Training({"loss": [1.0, 0.75]}, 2.5, True, 1600))
        recorder.evaluation(test, images=setup.data.splits["test"][0])
        recorder.calibration(calibration)
        recorder.digit_score(score)
        run_id = recorder.run_id()
    run = mlflow.get_run(run_id)
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    assert run.info.status == "FINISHED" and run.info.run_name == "recorded"
    assert tags["training.route"] == "cached" and tags["training.route.why"] == "a frozen backbone"
    assert tags["feature_cache"] == "hit" and metrics["feature_cache_s"] == 1.25
    assert metrics["feature_cache_test_s"] == 0.5 and metrics["startup_s"] == 3.5
    assert tags["training.xla"] == "true" and tags["training.steps"] == "1600"
    assert metrics["training_time_s"] == 2.5 and metrics["epochs_run"] == 2
    assert [m.value for m in mlflow.MlflowClient().get_metric_history(run_id, "loss")] == [1.0, 0.75]
    assert metrics["test_accuracy"] == pytest.approx(0.9) and "test_f1_macro" in metrics
    assert metrics["temperature"] == 1.5 and metrics["test_ece"] == 0.15
    assert metrics["digit_score_val_kept"] == 0.98
    assert tags["data.name"] == "made" and tags["data.digest"] == "0123456789abcdef"
    assert tags["data.test_size"] == "10" and tags["precision"] == "float32"
    assert tags["fallback"] == "true" and tags["fallback.data"] == "offline"
    assert tags["init_from"] == "models:/handwritten-digits/1" and tags["init_from.run_id"] == "abc"
    assert params["model.total_params"] == "1000" and params["tracking.run_name"] == "recorded"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "confusion_matrix")}
    assert artifacts == {"confusion_matrix/test.csv", "confusion_matrix/test.png"}
    csv = mlflow.artifacts.load_text(f"runs:/{run_id}/confusion_matrix/test.csv").splitlines()
    assert csv[0] == "true\\predicted,0,1,2,3,4,5,6,7,8,9" and csv[10] == "9,1,0,0,0,0,0,0,0,0,0"
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/digit_score_fitted_on.json") == score.fitted_on
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {"learning_curves.png", "reliability_diagram.png", "misclassified"} <= names
