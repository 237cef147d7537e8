"""Training across devices: a mirrored run really runs on several replicas and learns the same."""

import subprocess
import sys

import mlflow
import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow

COMMON = [
    # the from-scratch preset (28x28x1, batch 256): this test took 43 s alone with it, 94 s with the
    # 32x32x3 simple_cnn at batch 32 (and 161 s of a whole suite)
    "+experiment=fast_baseline", "data=mnist_sample", "training.epochs=6",
    "data.train_limit=2000", "data.test_limit=500", "training.verbose=0",
    # what is tested is the training across devices: no digit score, no reading model
    "training.digit_score.sample=0", "tracking.reader_model=null",
]  # fmt: skip


def test_mirrored_on_two_cpu_devices_learns_like_the_default_strategy(store, tmp_path):
    # each run in its own process: the CPU can only be split before TensorFlow starts
    # (the two at once: their seconds of start-up overlap)
    strategies = {"default": [], "mirrored": ["training.strategy=mirrored", "training.cpu_devices=2"]}
    processes = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "src.train",
                *COMMON,
                *overrides,
                f"tracking.run_name={name}",
                f"hydra.run.dir={tmp_path / name}",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for name, overrides in strategies.items()
    }
    outputs = {name: process.communicate(timeout=600)[0] for name, process in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, outputs[name][-3000:]
    output = outputs["mirrored"]
    assert "strategy mirrored: 2 replica(s) on CPU:0, CPU:1" in output

    runs = {r.info.run_name: r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}
    assert set(runs) == {"default", "mirrored"}
    for name, replicas in (("default", "1"), ("mirrored", "2")):
        run = runs[name]
        assert run.info.status == "FINISHED"
        assert run.data.params["distribute.replicas"] == replicas
        assert run.data.params["training.strategy"] == name
        assert run.data.tags["registered_model"].startswith("handwritten-digits/")
    assert runs["mirrored"].data.tags["distribute.devices"] == "CPU:0, CPU:1"
    default, mirrored = (runs[n].data.metrics["test_accuracy"] for n in ("default", "mirrored"))
    assert default > 0.85 and mirrored > 0.85
    # the same global batch, data and seed: the replicas average the same gradients (up to the order of
    # float sums and each replica's own dropout masks)
    assert abs(default - mirrored) <= 0.03, (default, mirrored)


def test_a_mirrored_run_trains_the_top_on_cached_features(store, tmp_path):
    result = run_cli(
        "src.train", "+experiment=smoke", "backbone.weights=null", "augmentation=none",
        "training.strategy=mirrored", "training.cpu_devices=2", "training.verbose=0",
        f"training.feature_cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FINISHED"
    assert run.data.tags["feature_cache"] == "computed"
    assert run.data.params["distribute.replicas"] == "2"
