"""Compare runs side by side: python -m src.compare --sweep <parent run id or name> | --filter "<filter>"
| --runs <id_a> <id_b>.

A sweep's comparison is logged on its parent run (comparison/ table as CSV and Markdown, charts); any set
of runs can be compared by an MLflow search filter. The table is printed either way. Two runs: what
changed between them (config, code, data, environment) and their metrics side by side.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import sys
import time
from pathlib import Path

from omegaconf import DictConfig

from src import UserError

log = logging.getLogger("src.compare")

RESULT_COLUMNS = [
    "status",
    "test_accuracy",
    "best_val_accuracy",
    "epochs_run",
    "training_time_s",
    "trainable_params",
    "total_params",
]
_NOT_COMPARED = ("tracking.", "model.")
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def differing_params(runs) -> list[str]:
    """The params that tell the runs apart; a group whose `name` differs is shown by its name alone."""
    keys = sorted({k for r in runs for k in r.data.params if not k.startswith(_NOT_COMPARED)})
    differ = [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]
    named_groups = {k.rsplit(".", 1)[0] for k in differ if k.endswith(".name")}
    return [k for k in differ if k.endswith(".name") or k.split(".", 1)[0] not in named_groups]


def comparison_rows(runs) -> tuple[list[str], list[dict], dict[str, list[float]]]:
    """Columns, one row per run, and each run's validation accuracy per epoch."""
    import mlflow

    client = mlflow.MlflowClient()
    params = differing_params(runs)
    rows, curves = [], {}
    for run in runs:
        name = run.info.run_name
        history = [
            m.value for m in sorted(client.get_metric_history(run.info.run_id, "val_accuracy"), key=_step)
        ]
        curves[name] = history
        metrics, p = run.data.metrics, run.data.params
        row = {"run": name, **{k: p.get(k, "") for k in params}}
        row.update(
            {
                "status": run.info.status,
                "test_accuracy": metrics.get("test_accuracy"),
                "best_val_accuracy": max(history) if history else None,
                "epochs_run": metrics.get("epochs_run"),
                "training_time_s": metrics.get("training_time_s"),
                "trainable_params": p.get("model.trainable_params", ""),
                "total_params": p.get("model.total_params", ""),
            }
        )
        rows.append(row)
    return ["run", *params, *RESULT_COLUMNS], rows, curves


def _step(metric) -> tuple[int, int]:
    return metric.step, metric.timestamp


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) >= 1 else f"{value:.4f}"
    text = str(value)
    try:  # params are strings: shorten long numbers (Optuna's samples)
        return f"{float(text):.4g}" if len(text) > 8 else text
    except ValueError:
        return text


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


def write_comparison(runs, out_dir: Path, title: str) -> str:
    """Table (CSV, Markdown) and charts into out_dir; returns the Markdown table."""
    from src import plots

    columns, rows, curves = comparison_rows(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(columns, rows)
    (out_dir / "comparison.md").write_text(f"# {title}\n\n{markdown}")
    (out_dir / "comparison.csv").write_text(to_csv(columns, rows))
    figure = plots.accuracy_bars_figure({r["run"]: r["test_accuracy"] for r in rows}, title)
    figure.savefig(out_dir / "test_accuracy.png", dpi=100)
    plots.plt.close(figure)
    figure = plots.val_accuracy_curves_figure(curves, title)
    figure.savefig(out_dir / "val_accuracy.png", dpi=100)
    plots.plt.close(figure)
    return markdown


def compare_sweep(parent_run_id: str, tracking_cfg: DictConfig) -> str:
    """Build the sweep's comparison, log it on the parent run, print it, and promote the champion."""
    import tempfile

    import mlflow

    from src import tracking

    runs = tracking.child_runs(parent_run_id)
    if not runs:
        raise UserError(f"sweep {parent_run_id} has no runs to compare")
    parent = mlflow.get_run(parent_run_id)
    title = f"{parent.info.run_name}: {len(runs)} runs"
    with tempfile.TemporaryDirectory() as tmp:
        markdown = write_comparison(runs, Path(tmp), title)
        mlflow.MlflowClient().log_artifacts(parent_run_id, tmp, "comparison")
    print(f"\n{title}\n{markdown}", flush=True)
    if tracking_cfg.registered_model:
        champion = tracking.promote_champion(
            tracking_cfg.registered_model, tracking_cfg.champion.metric, tracking_cfg.champion.mode
        )
        if champion:
            name = tracking_cfg.registered_model
            print(f"champion by {tracking_cfg.champion.metric}: models:/{name}@champion = version {champion}")
    return markdown


def find_sweep(ref: str) -> str:
    """A sweep's parent run id, from its id or its run name."""
    import mlflow

    from src import access

    try:
        return mlflow.get_run(ref).info.run_id
    except mlflow.exceptions.MlflowException as e:
        if access.refusal(e):
            raise
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.sweep = 'true' and attributes.run_name = '{ref}'",
        order_by=["start_time DESC"],
        output_format="list",
    )
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


def compare_two(run_a, run_b) -> str:
    """Markdown: the config keys, records (code, data, environment) and metrics of two runs, side by side."""
    a, b = run_a.data, run_b.data
    header = (
        f"A: {run_a.info.run_id} ({run_a.info.run_name}, {run_a.info.status})\n"
        f"B: {run_b.info.run_id} ({run_b.info.run_name}, {run_b.info.status})\n"
    )

    def differing(left: dict, right: dict, keep=lambda key: True) -> list[dict]:
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
    import mlflow

    runs = []
    for run_id in ids:
        try:
            runs.append(mlflow.get_run(run_id))
        except mlflow.exceptions.MlflowException:
            raise UserError(f"--runs: no run {run_id!r} in {mlflow.get_tracking_uri()}") from None
    return runs


def tracking_config(overrides: list[str] | None = None) -> DictConfig:
    """The `tracking` group as training composes it (store, registered model, champion metric)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides or []).tracking


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m src.compare",
        description="Compare MLflow runs side by side: a sweep (re-logged on its parent run) or any runs.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--sweep", help="the sweep's parent run id or run name (e.g. sweep-2026-11-24-10-00-00)"
    )
    which.add_argument("--filter", help="an MLflow search filter, e.g. \"params.backbone.name = 'vgg16'\"")
    which.add_argument(
        "--runs", nargs=2, metavar=("RUN_A", "RUN_B"), help="two run ids: what changed, metrics side by side"
    )
    parser.add_argument("--out", default=None, help="where --filter writes its table and charts")
    parser.add_argument(
        "overrides", nargs="*", help="tracking overrides, e.g. tracking.champion.metric=test_loss"
    )
    args = parser.parse_args(argv)
    from src import access

    try:
        with access.refusals():
            return _compare(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _compare(args) -> int:
    import mlflow

    from src import access, tracking

    cfg = tracking_config(args.overrides)
    tracking.use_store(cfg, create=False)
    if args.sweep:
        compare_sweep(find_sweep(args.sweep), cfg)
        return 0
    if args.runs:
        print(compare_two(*get_runs(args.runs)), end="")
        return 0
    try:
        runs = mlflow.search_runs(
            search_all_experiments=True,
            filter_string=args.filter,
            order_by=["start_time ASC"],
            output_format="list",
        )
    except mlflow.exceptions.MlflowException as e:
        if access.refusal(e):
            raise
        raise UserError(f"--filter: {str(e).splitlines()[0]}") from None
    if not runs:
        raise UserError(f"--filter: no runs match {args.filter!r}")
    out_dir = Path(args.out or Path("experiments", "compare", time.strftime("%Y-%m-%d_%H-%M-%S")))
    print(write_comparison(runs, out_dir, f"{len(runs)} runs matching {args.filter}"))
    print(f"written to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
