"""Running the library as a user does: a command in its own process (wall time, peak memory, what else
it used), a training in this process, the latest run of the store; the checkout's commit."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# a start-up far slower than the same command's next one (28-35 s against 7-12 s, the first command after
# the bench's in-process trainings): its files read from disk again (major faults), more work (its CPU
# time), or the bench's own threads busy beside it (the bench's CPU time meanwhile)? Each command's
# usage, in the order the commands ran
USAGE_KEYS = ("major_faults", "cpu_s", "bench_cpu_s")  # what run_command records
USAGE: list[dict] = []


def commit() -> str:
    """The checkout's commit, `-dirty` when tracked files have changed since."""
    git = ["git", "-C", str(ROOT)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        changed = subprocess.run([*git, "status", "--porcelain", "-uno"], capture_output=True, text=True)
    except OSError:
        return "unknown"
    if head.returncode:
        return "unknown"
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


def compose(*overrides: str) -> Any:
    from src import config

    return config.compose(overrides)


def latest_run() -> Any:
    """The store's newest run (mlflow's tracking URI already set)."""
    import mlflow

    runs = mlflow.search_runs(search_all_experiments=True, order_by=["start_time DESC"], output_format="list")
    return runs[0]


def run_command(args: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float, int]:
    """A command as a user runs it: output, wall time, and the peak memory (max RSS, KiB) of its process.
    What else it used goes to USAGE[-1]: its major page faults (files read from disk, not the page
    cache), its CPU time, and the CPU time this process (the bench) spent while it ran."""
    start = time.perf_counter()
    parent = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            args, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=err, text=True
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        result = subprocess.CompletedProcess(args, process.returncode, out.read(), err.read())
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_SELF)
    USAGE.append(
        {
            "major_faults": usage.ru_majflt,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "bench_cpu_s": round(after.ru_utime + after.ru_stime - parent.ru_utime - parent.ru_stime, 1),
        }
    )
    return result, wall, usage.ru_maxrss


def train_command(store: str, workdir: Path, *overrides: str) -> dict:
    """`python -m src.train overrides` as a user runs it (the store already exists, as a user's does):
    wall time, peak memory, and the run's metrics and tags."""
    import mlflow

    workdir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "src.train", *overrides, f"hydra.run.dir={workdir}", "training.verbose=0"]
    _, wall, peak_kb = run_command(args, {"MLFLOW_TRACKING_URI": store})
    mlflow.set_tracking_uri(store)
    run = latest_run()
    return {
        "wall_s": wall,
        "peak_memory_gib": peak_kb / 1024**2,
        "test_accuracy": run.data.metrics["test_accuracy"],
        "val_accuracy": run.data.metrics.get("final_val_accuracy"),
        "train_size": int(run.data.tags["data.train_size"]),
        "data": run.data.tags["data.name"],
        "route": run.data.tags.get("training.route"),
        "precision": run.data.tags.get("precision"),
        "run_id": run.info.run_id,
        "seed": int(run.data.params["training.seed"]),
        "startup_s": run.data.metrics.get("startup_s"),
        **USAGE[-1],
    }


def framework_run(store: str, *overrides: str) -> dict:
    """A training run through src.train (tf.data, callbacks, tracking); its logged metrics. No digit
    score: its crops are cut in a thread while the first epochs run, which the throughput rows would
    count (and nothing here reads it)."""
    import mlflow

    from src.train import train

    overrides = (
        *overrides,
        f"tracking.uri={store}",
        "training.verbose=0",
        "tracking.registered_model=null",
        "training.digit_score.sample=0",
    )
    start = time.perf_counter()
    scores = train(compose(*overrides))
    wall = time.perf_counter() - start
    run = latest_run()
    client = mlflow.MlflowClient()
    epochs = [
        m.value
        for m in sorted(client.get_metric_history(run.info.run_id, "epoch_time_s"), key=lambda m: m.step)
    ]
    return {
        **scores,
        "wall_s": wall,
        "epoch_times_s": epochs,
        "feature_cache_s": run.data.metrics.get("feature_cache_s"),
        "feature_cache_test_s": run.data.metrics.get("feature_cache_test_s", 0.0),
        "train_size": int(run.data.tags["data.train_size"]),
    }


def full_mnist(data_path: str | None) -> str | None:
    """The full-MNIST file the bench can use: --data, else Keras's cache (never a download here)."""
    if data_path:
        return str(Path(data_path).absolute())
    cached = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
    return str(cached) if cached.is_file() else None
