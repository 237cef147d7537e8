"""What a trained model scored, recorded in its run: a split's evaluation (metrics, confusion matrix,
misclassified digits), the calibration and its reliability diagram, and the digit score, logged at
training or kept in the run after it ended (on the model's first read). Each comes as a result of
src/results.py."""

from __future__ import annotations

import json
import logging

import mlflow
import numpy as np

from src.results import Calibration, DigitScoreRecord, Evaluation

log = logging.getLogger(__name__)


def log_evaluation(
    evaluation: Evaluation, images: np.ndarray | None = None, prefix: str | None = None
) -> None:
    """A split's metrics, confusion matrix (PNG and CSV) and, given the images, its misclassified digits."""
    from src.tracking import plots

    split = evaluation.split
    prefix = f"{split}_" if prefix is None else prefix
    metrics = {f"{prefix}accuracy": evaluation.accuracy, f"{prefix}loss": evaluation.loss}
    if split == "test":
        metrics.update({f"test_{key}": value for key, value in evaluation.per_class().items()})
    mlflow.log_metrics(metrics)
    counts = evaluation.confusion()
    classes = range(evaluation.classes)
    header = "true\\predicted," + ",".join(str(c) for c in classes)
    rows = [f"{c}," + ",".join(str(n) for n in counts[c]) for c in classes]
    mlflow.log_text("\n".join([header, *rows]) + "\n", f"confusion_matrix/{split}.csv")
    figure = plots.confusion_figure(
        counts, f"{split}: accuracy {evaluation.accuracy:.4f} (n={len(evaluation.labels)})"
    )
    mlflow.log_figure(figure, f"confusion_matrix/{split}.png")
    plots.plt.close(figure)
    if images is not None:
        figure = plots.misclassified_figure(images, evaluation.labels, evaluation.probabilities)
        mlflow.log_figure(figure, f"misclassified/{split}.png")
        plots.plt.close(figure)


def log_digit_score(score: DigitScoreRecord | None) -> None:
    """What the digit score (src/reading/digit_score.py) was fitted on and the share of validation digits
    its thresholds keep (nothing: the run fitted none)."""
    if score is None:
        return
    mlflow.log_metrics(score.metrics)
    mlflow.log_dict(score.fitted_on, "digit_score_fitted_on.json")


def keep_digit_score(run_id: str, score: DigitScoreRecord, name: str) -> None:
    """A digit score fitted after its run ended (on the model's first read) kept in that run: the score
    at `name` (as the model's metadata would hold it), what `log_digit_score` records. A store that will
    not take it (a login that may only read) is told in a warning: the score is fitted again next time."""
    client = mlflow.MlflowClient()
    try:
        client.log_text(run_id, json.dumps(score.score), name)
        client.log_dict(run_id, score.fitted_on, "digit_score_fitted_on.json")
        for key, value in score.metrics.items():
            client.log_metric(run_id, key, value)
    except mlflow.exceptions.MlflowException as e:
        log.warning("digit score: not kept in run %s (%s); it is fitted again on the next read", run_id, e)


def log_calibration(calibration: Calibration) -> None:
    """The fitted temperature, the expected calibration errors before and after it (`val_ece_before`,
    `val_ece`, ...) and reliability_diagram.png."""
    from src.tracking import plots

    mlflow.log_metrics(calibration.metrics)
    figure = plots.reliability_figure(calibration.curves, calibration.metrics)
    mlflow.log_figure(figure, "reliability_diagram.png")
    plots.plt.close(figure)
