"""The bench: its keras-io row timed in full off the recorded path and estimated only on it; a bad --data
file refused before any step."""

import numpy as np
import pytest

import bench
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    """600 training and 200 test digits of the offline sample, in Keras's mnist.npz layout."""
    sample = np.load(bench.ROOT / "src/data/mnist_sample.npz")
    path = tmp_path_factory.mktemp("data") / "mnist.npz"
    np.savez(
        path, x_train=sample["x_train"][:600], y_train=sample["y_train"][:600],
        x_test=sample["x_test"][:200], y_test=sample["y_test"][:200],
    )  # fmt: skip
    return str(path)


def test_keras_io_is_estimated_only_where_it_follows_the_recorded_path(tiny_mnist):
    # out of reach here: every epoch is timed, as the full bench does
    measured = bench.keras_io_convnet(tiny_mnist, epochs=3, target=0.9999)
    assert measured["epochs_timed"] == 3 and not measured["time_to_target_estimated"]
    assert measured["time_to_target_s"] is None and measured["epochs_to_target"] is None
    path = [round(a, 4) for a in measured["test_accuracies"]]
    assert len(set(path)) > 1  # a path that says something: the accuracies change from epoch to epoch

    # the same run again on a recorded path of five epochs: it stops after the three it checked, and the
    # rest is estimated from the epochs after the first
    recorded = [*path, 0.9999, 0.9999]
    followed = bench.keras_io_convnet(tiny_mnist, epochs=6, target=0.9999, follow=recorded, timed=3)
    assert [round(a, 4) for a in followed["test_accuracies"]] == path  # deterministic on this machine
    assert followed["time_to_target_estimated"] and followed["epochs_timed"] == 3
    assert followed["epochs_to_target"] == 5 and followed["time_to_target_s"] > followed["total_s"]

    # a recorded path this run leaves: nothing is estimated, it runs on as if there were none
    other = [path[0], round(path[1] + 0.01, 4), *path[2:], 0.9999, 0.9999]
    off = bench.keras_io_convnet(tiny_mnist, epochs=4, target=0.9999, follow=other, timed=3)
    assert not off["time_to_target_estimated"] and off["epochs_timed"] == 4
    assert off["time_to_target_s"] is None


def test_a_bad_data_file_is_refused_before_any_step(tmp_path):
    text = tmp_path / "mnist.npz"
    text.write_text("not an archive")
    for path, message in ((tmp_path / "nope.npz", "no such file"), (text, "is not an .npz archive")):
        result = run_cli("bench", "--quick", "--data", str(path), "--out", str(tmp_path / "out"), timeout=60)
        assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
        assert "[bench" not in result.stdout  # no step started
    assert not (tmp_path / "out").exists()


def test_a_row_not_measured_says_why():
    quick_without_data = {"mode": "quick", "full_mnist": None}
    assert "needs full MNIST" in bench.applies("fast_baseline_vs_keras_io_to_99", quick_without_data)
    assert "make bench-full" in bench.applies("study_exact_vs_fast", quick_without_data)
    quick = {"mode": "quick", "full_mnist": "/data/mnist.npz", "fast_baseline_vs_keras_io_to_99": 0.2}
    assert bench.applies("fast_baseline_vs_keras_io_to_99", quick) is None
    assert "make bench-full" in bench.applies("fast_baseline_long_vs_keras_io_15", quick)
    full_without_data = {"mode": "full", "full_mnist": None}
    assert bench.applies("default_study_full_mnist_s", full_without_data).startswith("not measured: needs")


def test_the_study_s_gap_is_the_mean_of_paired_seeds_read_against_its_own_spread(tmp_path):
    """The default command against the exact training with the same seed, three seeds: the target row is
    the size of the mean of the seeds' gaps, each seed's gap is shown beside it, and where the mean's 95%
    interval holds 0 the row says the gap is within seed noise."""
    noisy = bench.paired_gaps([0.9032, 0.8827, 0.8940], [0.8824, 0.9047, 0.8880])  # +2.08, -2.20, +0.60
    assert noisy["study_seed_gaps_points"] == [2.08, -2.2, 0.6]
    assert noisy["study_accuracy_gap_points"] == pytest.approx(abs(2.08 - 2.20 + 0.60) / 3, abs=1e-9)
    assert noisy["study_gap_within_seed_noise"]
    tight = bench.paired_gaps([0.903, 0.902, 0.904], [0.881, 0.881, 0.881])  # 2.2, 2.1, 2.3: sd 0.1 points
    assert tight["study_gap_interval_points"] == pytest.approx(0.1 * 4.3027 / np.sqrt(3), rel=1e-3)
    assert (
        tight["study_accuracy_gap_points"] == pytest.approx(2.2) and not tight["study_gap_within_seed_noise"]
    )
    machine = {"cpus": 2, "processor": "x86_64", "tensorflow": "2", "keras": "3"}
    for gaps, met, said in ((noisy, True, "mean of 3 seeds' paired gaps"), (tight, False, "mean of 3 seeds")):
        r = {"mode": "full", "date": "today", "machine": machine, "study_fast_seeds": [42, 1, 2], **gaps}
        bench.write(r, tmp_path)
        row = next(
            line for line in (tmp_path / "latest.md").read_text().splitlines() if "gap to exact" in line
        )
        assert row.split("|")[4].strip().startswith(f"{'yes' if met else 'no'} ({said}")
        assert "42: +2.08, 1: -2.20, 2: +0.60" in row if gaps is noisy else "42: +2.20" in row
        assert ("within seed noise" in row) is gaps["study_gap_within_seed_noise"]
        assert r["targets"]["study_accuracy_gap_points"]["met"] is met
