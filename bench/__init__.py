"""make bench: what a run costs on this machine, every comparison measured inside one run.

python -m bench [--quick] [--data PATH/mnist.npz] [--out experiments/bench] [--docs docs]
python -m bench --page      # docs/results.md again from the JSON beside it, nothing measured

Writes bench-<time>.json and .md (and latest.json/.md) under --out, and partial.json while it runs; a
finished bench also writes its JSON to docs/results/bench-<mode>.json and the results page
docs/results.md from it (the machine, the date and the commit with every table).
--quick uses subsets, times five of the keras-io recipe's epochs where it follows its recorded path
(KERAS_IO_RECORDED) and leaves the full-MNIST memory run and the default study against the exact
training to the full mode (aim: 10 minutes on a 2-core CPU); the full mode uses full MNIST and 25 epochs
where the targets say so (about an hour on a 2-core CPU: docs/results.md has each run's time).

The bench measures the library (`src/`) from outside it: it imports the library and runs its commands
as a user does; the library never imports it. One module per measurement (`speed`, `cache`, `startup`,
`keras_io`, `default_study`, `digit_score`, `reading`, `drawn`, `other_hands`), the targets in one table
(`targets`), the JSON and the results page (`page`), the command and its steps in order (`run`).
"""

from bench.default_study import paired_gaps
from bench.keras_io import KERAS_IO_RECORDED, keras_io_convnet
from bench.page import MODES, publish, results_json, results_page, write, write_results_page
from bench.run import arguments, main
from bench.runs import ROOT
from bench.targets import TARGETS, applies, score_targets

__all__ = [
    "KERAS_IO_RECORDED", "MODES", "ROOT", "TARGETS", "applies", "arguments", "keras_io_convnet", "main",
    "paired_gaps", "publish", "results_json", "results_page", "score_targets", "write", "write_results_page",
]  # fmt: skip
