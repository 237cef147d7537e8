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

from src import cli
from src.tracking.rebuild import prepare


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
