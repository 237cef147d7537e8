"""python -m bench: see bench/__init__.py."""

import sys

from bench.run import main
from src import cli

cli.outlive_closed_output()  # an hour of bench must not end with its reader (`make bench | head`)
sys.exit(main())
