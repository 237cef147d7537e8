"""Compare runs side by side: python -m src.compare --sweep <parent run id or name> | --filter "<filter>"
| --runs <id_a> <id_b>.

A sweep's comparison is logged on its parent run (comparison/ table as CSV and Markdown, charts); any set
of runs can be compared by an MLflow search filter. The table is printed either way. Two runs: what
changed between them (config, code, data, environment) and their metrics side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from src import UserError, cli, config
from src.sweeps.comparison import compare_sweep, compare_two, find_sweep, get_runs, write_comparison


def arguments() -> argparse.ArgumentParser:
    """The command's options (its --help; the docs' commands are checked against them)."""
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
        "overrides", nargs="*", help="tracking overrides, e.g. tracking.champion.min_delta=0.002"
    )
    return parser


@cli.command()
def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)
    from src import tracking
    from src.tracking import records

    cfg = config.compose(args.overrides).tracking  # as training composes it
    config.validate_champion(cfg)
    tracking.use_store(cfg, create=False)
    if args.sweep:
        compare_sweep(find_sweep(args.sweep), cfg)
        return 0
    if args.runs:
        print(compare_two(*get_runs(args.runs)), end="")
        return 0
    try:
        runs = records.search_runs(args.filter)
    except records.NotFound as e:
        raise UserError(f"--filter: {e}") from None
    if not runs:
        raise UserError(f"--filter: no runs match {args.filter!r}")
    out_dir = Path(args.out or Path("experiments", "compare", time.strftime("%Y-%m-%d_%H-%M-%S")))
    print(write_comparison(runs, out_dir, f"{len(runs)} runs matching {args.filter}")[0])
    print(f"written to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
