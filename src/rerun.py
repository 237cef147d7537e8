"""Run a tracked run again from its record alone: python -m src.rerun run_id=<id> [overrides].

The config is rebuilt from what the run logged: Hydra's record of its command-line overrides
(config/hydra/overrides.yaml) composed again against conf/, checked key by key against the composed config
the run logged (config/config.yaml); a key that conf/ now composes differently is set back to the logged
value (and said so). The code version (git commit) and the data (digest) are checked, then the training
entry point runs with the rebuilt overrides plus any given here, as a new run in the same experiment
tagged rerun_of=<id>. No Hydra output directory or shell history is needed.

    python -m src.rerun run_id=<id>                              # the same run again
    python -m src.rerun model=models:/handwritten-digits@champion training.epochs=30
    python -m src.rerun run_id=<id> same_code=true training.deterministic=true hydra.run.dir=/tmp/again
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from src import UserError, cli
from src.tracking import rebuild

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger("src.rerun")


def prepare(argv: list[str]) -> list[str]:
    """Everything but the training: the arguments for the training entry point (the run's config rebuilt
    from its record by src/tracking/rebuild.py, its data checked here)."""
    return rebuild.prepare(argv, check_data)


def check_data(cfg: DictConfig, tags: Mapping[str, str], allow_other_data: bool) -> str:
    """The digest of the data this run would use against the one the run recorded."""
    from src.reading.folder import load_data

    digest = load_data(cfg.data, strict=cfg.strict).digest
    then = tags.get("data.digest")
    if then == digest:
        return digest
    message = (
        f"the run had no data digest; this data's is {digest}"
        if not then
        else f"the data differs from the run's: digest {digest}, the run's {then} "
        f"({tags.get('data.name', '?')} from {tags.get('data.source', '?')})"
    )
    if not allow_other_data:
        raise UserError(f"{message}; allow_other_data=true re-runs on it anyway")
    log.warning("%s (allow_other_data=true)", message)
    return digest


@cli.command()
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if {"--help", "-h"} & set(argv):
        print(__doc__.strip())
        print(
            "\nOptions:\n  run_id=<id>        the run to run again\n"
            "  model=<models:/ URI>  or the run behind a registered model version\n"
            "  same_code=true     refuse to run when the code differs from the run's commit\n"
            "  allow_other_data=true  run even when the data's digest differs from the run's\n"
            "Any other key=value is an override of python -m src.train (python -m src.train --help)."
        )
        return 0
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    arguments = prepare(argv)
    logging.getLogger().handlers.clear()  # Hydra configures logging for the run (and its log file)
    import runpy

    # exactly `python -m src.train <arguments>`: Hydra finds conf/ from the script it runs as __main__
    sys.argv = [sys.argv[0], *arguments]
    runpy.run_module("src.train", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
