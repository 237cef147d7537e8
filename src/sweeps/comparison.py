"""Comparing runs: a sweep's configurations (mean and spread over seeds, ranked on validation, with a
Welch test against the best), any runs an MLflow filter finds, or two runs side by side; and offering a
sweep's best configuration the champion alias."""

from __future__ import annotations

import csv
import io
import logging
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import DictConfig

from src import UserError
from src.sweeps.names import run_name, short_number

if TYPE_CHECKING:
    from collections.abc import Callable

    from src.tracking.records import Metric, Run

log = logging.getLogger("src.compare")

RESULT_COLUMNS = [
    "status",
    "val_accuracy",
    "test_accuracy",
    "epochs_run",
    "training_time_s",
    "trainable_params",
    "total_params",
]
_NOT_COMPARED = ("tracking.", "model.")
# what tells repeats of one configuration apart
SEED = "training.seed"


def differing_params(runs: list[Run]) -> list[str]:
    """The params that tell the runs apart; a group whose `name` differs is shown by its name alone."""
    logged = [r for r in runs if r.data.params]  # a job that failed before logging its config says nothing
    keys = sorted({k for r in logged for k in r.data.params if not k.startswith(_NOT_COMPARED)})
    differ = [k for k in keys if len({r.data.params.get(k) for r in logged}) > 1]
    named_groups = {k.rsplit(".", 1)[0] for k in differ if k.endswith(".name")}
    return [k for k in differ if k.endswith(".name") or k.split(".", 1)[0] not in named_groups]


def comparison_rows(runs: list[Run]) -> tuple[list[str], list[dict], dict[str, list[float]]]:
    """Columns, one row per run, and each run's validation accuracy per epoch. `val_accuracy` scores the
    registered weights on the validation split (what chooses); the test accuracy is only reported."""
    from src.tracking import records

    params = differing_params(runs)
    rows, curves = [], {}
    for run in runs:
        name = run.info.run_name
        history = [
            m.value for m in sorted(records.metric_history(run.info.run_id, "val_accuracy"), key=_step)
        ]
        curves[name] = history
        metrics, p = run.data.metrics, run.data.params
        row = {"run": name, **{k: p.get(k, "") for k in params}}
        row.update(
            {
                # a trial the pruner stopped ends KILLED in MLflow and says so in a tag
                "status": run.data.tags.get("sweep.trial_state", run.info.status),
                "val_accuracy": metrics.get("final_val_accuracy"),
                "test_accuracy": metrics.get("test_accuracy"),
                "epochs_run": metrics.get("epochs_run"),
                "training_time_s": metrics.get("training_time_s"),
                "trainable_params": p.get("model.trainable_params", ""),
                "total_params": p.get("model.total_params", ""),
                "registered": run.data.tags.get("registered_model", ""),
                "logged": bool(p),
            }
        )
        rows.append(row)
    return ["run", *params, *RESULT_COLUMNS], rows, curves


@dataclass
class Configuration:
    """The runs of a comparison that differ only in seed, and their scores' mean and spread."""

    name: str
    runs: list[dict]
    metric: str = "val_accuracy"

    def scores(self, key: str) -> list[float]:
        return [r[key] for r in self.runs if r["status"] == "FINISHED" and r.get(key) is not None]

    def mean(self, key: str) -> float | None:
        values = self.scores(key)
        return statistics.fmean(values) if values else None

    def std(self, key: str) -> float | None:
        values = self.scores(key)
        return statistics.stdev(values) if len(values) >= 2 else None


def configurations(columns: list[str], rows: list[dict]) -> list[Configuration]:
    """The rows grouped by every differing parameter but the seed, in order of first appearance."""
    keys = [c for c in columns[1 : columns.index(RESULT_COLUMNS[0])] if c != SEED]
    groups: dict[tuple, Configuration] = {}
    for row in rows:
        key = tuple(row.get(k, "") for k in keys)
        # named as a sweep names its runs: `rotation`, `lr0.001-units=512` (a group by its choice)
        named = [
            (k.removesuffix(".name") if k.endswith(".name") else k, v) for k, v in zip(keys, key, strict=True)
        ]
        name = run_name([f"{k}={v}" for k, v in named if v != ""], [])
        if not row.get("logged", True):  # a job that failed before logging its config stands alone
            key, name = ("run", row["run"]), row["run"]
        groups.setdefault(key, Configuration(name, [])).runs.append(row)
    for group in groups.values():  # nothing tells them apart: a run by its name, repeats as "all runs"
        group.name = group.name or (group.runs[0]["run"] if len(group.runs) == 1 else "all runs")
    return list(groups.values())


def ranked(groups: list[Configuration], metric: str = "val_accuracy", mode: str = "max") -> list:
    """Configurations with a score, best first by the mean of `metric` over their finished runs."""
    scored = [g for g in groups if g.mean(metric) is not None]
    return sorted(scored, key=lambda g: g.mean(metric) if mode == "max" else -g.mean(metric), reverse=True)


def summary_markdown(groups: list[Configuration], metric: str = "val_accuracy", mode: str = "max") -> str:
    """Mean, standard deviation and n per configuration, ranked by the mean validation accuracy, and
    whether each one's gap to the best is within seed noise."""
    order = ranked(groups, metric, mode)
    if not order:
        return "No configuration has a finished run to rank.\n"
    best = order[0]
    columns = ["rank", "configuration", "n", "val mean", "val std", "test mean", "test std", "vs best"]
    rows = []
    for rank, group in enumerate(order, 1):
        rows.append(
            {
                "rank": rank,
                "configuration": group.name,
                "n": len(group.scores(metric)),
                "val mean": group.mean(metric),
                "val std": group.std(metric),
                "test mean": group.mean("test_accuracy"),
                "test std": group.std("test_accuracy"),
                "vs best": "best" if group is best else versus(group, best, metric),
            }
        )
    failed = [g.name for g in groups if g not in order]
    note = f"\nNo finished run: {', '.join(failed)}.\n" if failed else ""
    return to_markdown(columns, rows) + note


def versus(group: Configuration, best: Configuration, metric: str) -> str:
    """The gap to the best configuration's mean, and whether it is within seed noise: Welch's t-test on
    the two sets of seeds (p >= 0.05: no evidence the two differ). With a single run on either side the
    spread is unknown, and the gap says nothing."""
    from scipy import stats

    mine, theirs = group.mean(metric), best.mean(metric)
    if mine is None or theirs is None:
        return "no score"
    gap = mine - theirs
    a, b = group.scores(metric), best.scores(metric)
    if len(a) < 2 or len(b) < 2:
        return f"{gap:+.4f}, n=1: no spread"
    if np.std(a) == 0 and np.std(b) == 0:
        return f"{gap:+.4f}" + (", within seed noise" if gap == 0 else "")
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return f"{gap:+.4f}, p={p:.2g}: " + ("within seed noise" if p >= 0.05 else "beyond seed noise")


def _step(metric: Metric) -> tuple[int, int]:
    return metric.step, metric.timestamp


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) >= 1 else f"{value:.4f}"
    return short_number(str(value), digits=4)  # params are strings: Optuna's samples are long


def to_markdown(columns: list[str], rows: list[dict]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |"]
    lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join(lines) + "\n"


def to_csv(columns: list[str], rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: "" if row.get(c) is None else row.get(c) for c in columns} for row in rows)
    return out.getvalue()


def write_comparison(runs: list[Run], out_dir: Path, title: str) -> tuple[str, list[Configuration]]:
    """Table (CSV, Markdown) and charts into out_dir; returns the Markdown and the configurations.

    Runs that differ only in `training.seed` are repeats of one configuration: the Markdown then adds a
    summary (mean, standard deviation, n, ranked by mean validation accuracy) and the chart error bars.
    """
    from src.tracking import plots

    columns, rows, curves = comparison_rows(runs)
    groups = configurations(columns, rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(columns, rows)
    if any(len(g.runs) > 1 for g in groups):
        markdown += "\nBy configuration (repeats over seeds):\n\n" + summary_markdown(groups)
    (out_dir / "comparison.md").write_text(f"# {title}\n\n{markdown}")
    (out_dir / "comparison.csv").write_text(to_csv(columns, rows))
    bars = {
        g.name if any(len(g.runs) > 1 for g in groups) else g.runs[0]["run"]: {
            split: (g.mean(key), g.std(key) or 0.0, len(g.scores(key)))
            for split, key in (("validation", "val_accuracy"), ("test", "test_accuracy"))
        }
        for g in groups
    }
    figure = plots.accuracy_bars_figure(bars, title)
    figure.savefig(out_dir / "accuracy.png", dpi=100)
    plots.plt.close(figure)
    figure = plots.val_accuracy_curves_figure(curves, title)
    figure.savefig(out_dir / "val_accuracy.png", dpi=100)
    plots.plt.close(figure)
    return markdown, groups


def compare_sweep(parent_run_id: str, tracking_cfg: DictConfig) -> str:
    """Build the sweep's comparison, log it on the parent run, print it, and offer the sweep's best
    configuration (by the mean validation score over its seeds) to the champion alias."""
    import tempfile

    from src import tracking
    from src.tracking import records

    runs = tracking.child_runs(parent_run_id)
    if not runs:
        raise UserError(f"sweep {parent_run_id} has no runs to compare")
    parent = records.get_run(parent_run_id)
    title = f"{parent.info.run_name}: {len(runs)} runs"
    with tempfile.TemporaryDirectory() as tmp:
        markdown, groups = write_comparison(runs, Path(tmp), title)
        records.log_to(parent_run_id, [(Path(tmp), "comparison")])
    print(f"\n{title}\n{markdown}", flush=True)
    order = ranked(groups)
    if order:
        best = order[0]
        spread = f" +/- {best.std('val_accuracy'):.4f}" if best.std("val_accuracy") is not None else ""
        n = len(best.scores("val_accuracy"))
        print(f"best by validation accuracy: {best.name} ({best.mean('val_accuracy'):.4f}{spread}, n={n})")
        records.set_tag(parent_run_id, "sweep.best", best.name)
        if tracking_cfg.registered_model:
            print(offer_champion(tracking_cfg, best))
    return markdown


def offer_champion(tracking_cfg: DictConfig, best: Configuration) -> str:
    """Promote the best configuration's best version if it beats the champion by min_delta; says what
    happened."""
    from src import tracking

    name, champion = tracking_cfg.registered_model, tracking_cfg.champion
    versions = [
        r["registered"].rsplit("/", 1)[-1]
        for r in best.runs
        if r["status"] == "FINISHED" and r["registered"].startswith(f"{name}/")
    ]
    if not versions:
        return f"champion: the best configuration registered no version of {name}"
    scores = tracking.version_scores(name, champion.metric)
    candidate = tracking.best_version(name, champion.metric, champion.mode, versions)
    settled = tracking.promote_champion(
        name, champion.metric, champion.mode, champion.min_delta, candidates=versions,
        reader_model=tracking_cfg.get("reader_model"),
    )  # fmt: skip
    if candidate is None or settled is None:
        return f"champion: no version of the best configuration has {champion.metric}"
    if settled == candidate:
        score = scores[candidate]
        return f"champion by {champion.metric}: models:/{name}@champion = version {settled} ({score:.4f})"
    return (
        f"champion stays version {settled} ({champion.metric} {scores.get(settled, float('nan')):.4f}): the "
        f"sweep's best, version {candidate} ({scores[candidate]:.4f}), does not beat it by "
        f"tracking.champion.min_delta={champion.min_delta}"
    )


def find_sweep(ref: str) -> str:
    """A sweep's parent run id, from its id or its run name."""
    from src.tracking import records

    try:
        return records.get_run(ref).info.run_id
    except records.NotFound:
        pass
    runs = records.search_runs(f"tags.sweep = 'true' and attributes.run_name = '{ref}'", newest_first=True)
    if not runs:
        raise UserError(f"sweep: no run with id or name {ref!r}")
    return runs[0].info.run_id


# tags that say what a run ran on: shown for two runs when they differ
_RECORD_TAGS = (
    "mlflow.source.git.commit",
    "git.dirty",
    "data.",
    "env.",
    "rerun_of",
    "feature_cache",
    "fallback",
)


def _per_class(metric: str) -> bool:
    """test_precision_3 and the like: thirty rows that hide the rest (their _macro averages stay)."""
    return metric.startswith(("test_precision_", "test_recall_", "test_f1_")) and metric[-1].isdigit()


def compare_two(run_a: Run, run_b: Run) -> str:
    """Markdown: the config keys, records (code, data, environment) and metrics of two runs, side by side."""
    a, b = run_a.data, run_b.data
    header = (
        f"A: {run_a.info.run_id} ({run_a.info.run_name}, {run_a.info.status})\n"
        f"B: {run_b.info.run_id} ({run_b.info.run_name}, {run_b.info.status})\n"
    )

    def differing(left: dict, right: dict, keep: Callable[[str], bool] = lambda key: True) -> list[dict]:
        keys = sorted(k for k in set(left) | set(right) if keep(k) and left.get(k) != right.get(k))
        return [{"key": k, "A": left.get(k), "B": right.get(k)} for k in keys]

    config = differing(a.params, b.params, lambda k: k != "tracking.tags.rerun_of")  # a tag below
    record = differing(a.tags, b.tags, lambda k: k.startswith(_RECORD_TAGS))
    metrics = []
    for key in sorted(k for k in set(a.metrics) | set(b.metrics) if not _per_class(k)):
        va, vb = a.metrics.get(key), b.metrics.get(key)
        delta = vb - va if va is not None and vb is not None else None
        metrics.append({"metric": key, "A": va, "B": vb, "B - A": delta})
    parts = [header]
    parts.append(
        "## Config: the same\n"
        if not config
        else f"## Config: {len(config)} {'key differs' if len(config) == 1 else 'keys differ'}\n\n"
        + to_markdown(["key", "A", "B"], config)
    )
    parts.append(
        "## Code, data, environment: the same\n"
        if not record
        else "## Code, data, environment\n\n" + to_markdown(["key", "A", "B"], record)
    )
    parts.append(
        "## Metrics (per-epoch ones: the last epoch)\n\n"
        + to_markdown(["metric", "A", "B", "B - A"], metrics)
    )
    return "\n".join(parts)


def get_runs(ids: list[str]) -> list:
    from src.tracking import records

    runs = []
    for run_id in ids:
        try:
            runs.append(records.get_run(run_id))
        except records.NotFound as e:
            raise UserError(f"--runs: {e}") from None
    return runs
