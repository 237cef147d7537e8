"""The command: its options, and the bench's steps in the order they run, each adding its rows."""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench import cache, default_study, digit_score, keras_io, speed, startup
from bench.context import Bench
from bench.drawn import drawn_numbers
from bench.other_hands import other_hands
from bench.page import publish, write, write_results_page
from bench.reading import reading
from bench.runs import DOCS, ROOT, commit

DESCRIPTION = "make bench: what a run costs on this machine, every comparison measured inside one run."


def arguments() -> argparse.ArgumentParser:
    """The command's options (its --help; the docs' commands are checked against them)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="subsets (aim: 10 minutes on 2 CPU cores)")
    parser.add_argument(
        "--data", default=None, help="a Keras-layout mnist.npz (default: Keras cache/download)"
    )
    parser.add_argument("--out", default="experiments/bench", help="where its JSON and tables go")
    parser.add_argument(
        "--docs", default=str(DOCS), help="where the results page and its JSON go (default: docs/)"
    )
    parser.add_argument(
        "--page", action="store_true", help="write the results page from the JSON in --docs, and stop"
    )
    return parser


def machine() -> dict:
    import keras
    import tensorflow as tf

    from src.tracking import environment

    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "cpu": environment.cpu()["cpu"],
    }


def reading_composed(b: Bench) -> dict:
    """The reading steps' model: with full MNIST, the first fast_baseline run above (2 epochs on full
    MNIST), else one trained here on the offline sample; numbers composed from its test digits."""
    import mlflow

    if b.full_data:
        b.reader = mlflow.search_runs(
            search_all_experiments=True,
            filter_string="params.backbone.name = 'simple_cnn' and params.data.name = 'mnist'",
            order_by=["start_time ASC"],
            output_format="list",
        )[0].info.run_id
        assert b.mnist is not None
        digits = np.load(b.mnist)
    else:
        b.reader = b.run("+experiment=fast_baseline", "data=mnist_sample", "training.epochs=10")["run_id"]
        digits = np.load(ROOT / "src/data/mnist_sample.npz")
    count = 100 if b.quick else 300
    return reading(f"runs:/{b.reader}/model", b.store, digits["x_test"], digits["y_test"], count)


def reading_drawn(b: Bench) -> dict:
    return drawn_numbers(f"runs:/{b.reader}/model", b.store, 20 if b.quick else 100)


def reading_other_hands(b: Bench) -> dict:
    return other_hands(f"runs:/{b.reader}/model", b.store, 100 if b.quick else 300)


def full_mnist_row(b: Bench) -> dict:
    """None: no --data and no Keras cache; the rows that need it are not measured."""
    return {"full_mnist": b.mnist}


def bf16_measured(b: Bench) -> bool:
    """The bf16 target applies only where the probe picks bf16 (the quick bench skips it elsewhere)."""
    return b.r["precision_auto_chooses"] == "mixed_bfloat16" or not b.quick


def always(b: Bench) -> bool:
    return True


def full(b: Bench) -> bool:
    return not b.quick


def with_full_mnist(b: Bench) -> bool:
    return b.full_data is not None


def full_with_full_mnist(b: Bench) -> bool:
    return not b.quick and b.full_data is not None


Measure = Callable[[Bench], dict]
# Each step: its name (None: rows without a step of their own), when it runs, and what it measures, in
# order. Full mode only: the full-MNIST memory run (quick: 5 of its 20 minutes on a slow CPU, VGG16 over
# 70,000 digits), the default study against the exact training, fast_baseline trained longer, the
# cache on a whole command (about 4 minutes), the default study against the data and the sweep.
STEPS: list[tuple[str | Callable[[Bench], str] | None, Callable[[Bench], bool], tuple[Measure, ...]]] = [
    ("matrix-multiply peak", always, (lambda b: speed.peak_and_precision(),)),
    ("VGG16 forward", always, (speed.forward,)),
    ("the default study's echoed view against VGG16's forward pass", always, (speed.echo_view,)),
    (
        lambda b: f"framework vs plain model.fit ({speed.fit_size(b)} digits)",
        always,
        (speed.framework_vs_plain,),
    ),
    ("float32 vs mixed_bfloat16 training", bf16_measured, (speed.bf16_vs_float32,)),
    (lambda b: f"feature cache on/off ({cache.cache_epochs(b)} epochs)", always, (cache.cache_on_off,)),
    (
        "command start to first step, end-of-run logging, prediction latency",
        always,
        (startup.startup_logging_latency,),
    ),
    ("peak memory of a full-MNIST VGG16 run", full, (startup.full_mnist_memory,)),
    (None, always, (full_mnist_row,)),
    (
        "default study vs the exact training (6000 training digits, 25 epochs)",
        full,
        (default_study.study_against_exact,),
    ),
    (
        "fast_baseline vs the keras-io convnet (full MNIST)",
        with_full_mnist,
        (
            keras_io.keras_io,
            keras_io.fast_baseline,
            lambda b: {} if b.quick else keras_io.fast_baseline_longer(b),
        ),
    ),
    (
        "the digit score: at training or on the first read (fast_baseline, full MNIST)",
        with_full_mnist,
        (digit_score.digit_score_costs,),
    ),
    (
        "the feature cache on a whole command (VGG16, 4,096 digits)",
        full_with_full_mnist,
        (cache.cache_command_speedup,),
    ),
    ("reading: numbers composed from MNIST test digits", always, (reading_composed,)),
    (
        "reading: numbers drawn with the mouse on the drawing page (headless Chromium)",
        always,
        (reading_drawn,),
    ),
    (
        "reading: other hands than MNIST's (UCI's scanned digits, numbers in handwriting fonts)",
        always,
        (reading_other_hands,),
    ),
    (
        "the default study against the data: 6k, 15k, 30k, 60k training digits",
        full_with_full_mnist,
        (default_study.scaling,),
    ),
    ("the three-backbone sweep on full MNIST", full_with_full_mnist, (default_study.backbone_sweep,)),
]


def sequence(b: Bench) -> None:
    """Each step that applies, in order: its start recorded, then its rows."""
    for name, when, measures in STEPS:
        if not when(b):
            continue
        if name is not None:
            b.step(name if isinstance(name, str) else name(b))
        for measure in measures:
            b.r.update(measure(b))


def checked_data(parser: argparse.ArgumentParser, path: str) -> None:
    """A readable Keras-layout mnist.npz (0.3 s for full MNIST), else found after minutes of the bench's
    other steps."""
    from src import UserError, data

    try:
        data.read_npz(path)
    except UserError as e:
        parser.error(f"--data {path}: {str(e).removeprefix('data.path: ')}")


def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)
    if args.page:
        write_results_page(Path(args.docs))
        return 0
    if args.data:
        checked_data(parser, args.data)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import logging

    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    b = Bench(quick=args.quick, data=args.data, out=Path(args.out), tmp=tmp, r={})
    os.environ["MLFLOW_TRACKING_URI"] = b.store
    b.r.update(
        mode="quick" if args.quick else "full",
        machine=machine(),
        date=time.strftime("%Y-%m-%d %H:%M:%S"),
        commit=commit(),
    )
    b.began = time.perf_counter()
    sequence(b)
    b.finish()
    write(b.r, b.out)
    publish(b.r, Path(args.docs))
    return 0
