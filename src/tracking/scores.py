"""What a trained model scored, recorded in its run: a split's evaluation (metrics, confusion matrix,
misclassified digits), the calibration and its reliability diagram, and the digit score, logged at
training or kept in the run after it ended (on the model's first read)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import mlflow
import numpy as np

from src.data import NUM_CLASSES
from src.models.scoring import Evaluation

if TYPE_CHECKING:
    from src.reading.digit_score import DigitScore

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
    header = "true\\predicted," + ",".join(str(c) for c in range(NUM_CLASSES))
    rows = [f"{c}," + ",".join(str(n) for n in counts[c]) for c in range(NUM_CLASSES)]
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


def log_digit_score(score: DigitScore | None) -> None:
    """What the digit score (src/reading/digit_score.py) was fitted on and the share of validation digits
    its thresholds keep (nothing: the run fitted none)."""
    if score is None:
        return
    mlflow.log_metrics(_digit_score_metrics(score))
    mlflow.log_dict(score.fitted_on, "digit_score_fitted_on.json")


def _digit_score_metrics(score: DigitScore) -> dict[str, float]:
    metrics = {"digit_score_threshold": score.threshold, "digit_score_val_kept": score.kept}
    if score.cut_threshold is not None and score.kept_cut is not None:
        metrics["digit_score_cut_threshold"] = score.cut_threshold
        metrics["digit_score_val_kept_cut"] = score.kept_cut
    return metrics


def keep_digit_score(run_id: str, score: DigitScore, name: str) -> None:
    """A digit score fitted after its run ended (on the model's first read) kept in that run: the score
    at `name` (as the model's metadata would hold it), what `log_digit_score` records. A store that will
    not take it (a login that may only read) is told in a warning: the score is fitted again next time."""
    import json

    client = mlflow.MlflowClient()
    metrics = _digit_score_metrics(score)
    try:
        client.log_text(run_id, json.dumps(score.to_metadata()), name)
        client.log_dict(run_id, score.fitted_on, "digit_score_fitted_on.json")
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
    except mlflow.exceptions.MlflowException as e:
        log.warning("digit score: not kept in run %s (%s); it is fitted again on the next read", run_id, e)


def log_calibration(temperature: float, validation: Evaluation, test: Evaluation) -> None:
    """The fitted temperature, the 15-bin expected calibration error of validation and test before and
    after it (`val_ece_before`, `val_ece`, ...) and reliability_diagram.png."""
    from src.models import calibration
    from src.tracking import plots

    curves = {}
    metrics = {"temperature": temperature}
    for prefix, evaluation in (("val", validation), ("test", test)):
        before = calibration.scale(evaluation.probabilities, 1.0 / temperature)
        metrics[f"{prefix}_ece_before"] = calibration.expected_calibration_error(before, evaluation.labels)
        metrics[f"{prefix}_ece"] = calibration.expected_calibration_error(
            evaluation.probabilities, evaluation.labels
        )
        curves[evaluation.split] = {
            "before": calibration.reliability(before, evaluation.labels),
            f"after (T={temperature:.2f})": calibration.reliability(
                evaluation.probabilities, evaluation.labels
            ),
        }
    mlflow.log_metrics(metrics)
    figure = plots.reliability_figure(curves, metrics)
    mlflow.log_figure(figure, "reliability_diagram.png")
    plots.plt.close(figure)
