"""The bench's targets, in one table: each measure, its bound, and what the results page calls it; which
apply to a run, and whether each is met."""

from __future__ import annotations

TARGETS = [
    ("vgg16_forward_fraction_of_peak", ">=", 0.80, "VGG16 forward (nominal FLOPs) / matmul peak"),
    ("framework_vs_plain", ">=", 0.95, "framework / plain model.fit training throughput"),
    ("bf16_vs_float32_train", ">=", 1.6, "mixed_bfloat16 / float32 training throughput"),
    ("cached_later_vs_first", "<=", 0.02, "cached: later epoch / first epoch"),
    ("cached_total_vs_one_uncached_epoch", "<=", 1.3, "cached: all epochs / one uncached epoch"),
    ("startup_s", "<=", 10.0, "command start to first training step (s)"),
    ("logging_and_registration_s", "<=", 5.0, "end-of-run logging and registration (s)"),
    ("latency_p50_ms", "<=", 20.0, "single-digit prediction p50 (ms)"),
    ("full_mnist_peak_memory_gib", "<=", 3.0, "peak memory of a full-MNIST run (GiB)"),
    ("study_exact_vs_fast", ">=", 4.0, "default study, 25 epochs: exact / default command"),
    (
        "study_accuracy_gap_points",
        "<=",
        1.0,
        "default study: test accuracy gap to exact, mean of seeds (points)",
    ),
    ("default_study_full_mnist_s", "<=", 600.0, "default study on full MNIST, whole command (s)"),
    ("fast_baseline_vs_keras_io_to_99", "<=", 0.2, "fast_baseline / keras-io time to 99.0%"),
    (
        "fast_baseline_worst_startup_s",
        "<=",
        4.0,
        "fast_baseline: command start to first step, worst seed (s)",
    ),
    ("cache_command_speedup", ">=", 3.0, "VGG16 on 4,096 digits, whole command: uncached / cached"),
    ("fast_baseline_min_test_accuracy", ">=", 0.99, "fast_baseline test accuracy, worst seed"),
    ("fast_baseline_long_test_accuracy", ">=", 0.994, "fast_baseline, longer: test accuracy"),
    ("fast_baseline_long_vs_keras_io_15", "<=", 1.0, "fast_baseline, longer / keras-io 15 epochs"),
    (
        "echo_view_vs_forward",
        "<=",
        1.3,
        "the default study's echoed view (rotation, VGG16) / VGG16's forward pass, the slower precision",
    ),
    ("reading_spaced_digits_right", ">=", 0.99, "reading: digits right in spaced 5-digit numbers"),
    ("reading_spaced_exact", ">=", 0.95, "reading: spaced 5-digit numbers read exactly"),
    ("reading_touching_exact", ">=", 0.90, "reading: touching pairs read exactly"),
    ("reading_photo_exact", ">=", 0.90, "reading: spaced numbers on a photo of paper read exactly"),
    ("reading_fine_pen_exact", ">=", 0.90, "reading: spaced numbers in a fine pen read exactly"),
    ("reading_slanted_exact", ">=", 0.90, "reading: spaced numbers slanted 14-24 degrees read exactly"),
    ("reading_drawn_exact", ">=", 0.90, "reading: numbers drawn with the mouse read exactly"),
    ("other_hands_numbers_exact", ">=", 0.90, "reading: other hands' numbers read exactly (UCI, fonts)"),
    (
        "other_hands_digits_right",
        ">=",
        0.97,
        "reading: other hands' digits right (none of a wrong count's)",
    ),
    ("other_hands_uci_single_exact", ">=", 0.95, "reading: UCI's low-resolution scans of single digits"),
    ("other_hands_sure_numbers_wrong", "<=", 0.01, "reading: other hands' sure numbers that are wrong"),
    ("reading_slowest_picture_s", "<=", 2.0, "reading: the slowest picture (s)"),
    ("reading_bad_input_worst_s", "<=", 2.0, "reading: the slowest bad input (s)"),
    ("reading_sure_digits_wrong", "<=", 0.01, "reading: sure digits that are wrong"),
    ("reading_sure_numbers_wrong", "<=", 0.01, "reading: sure numbers that are wrong (composed sets)"),
    (
        "reading_non_digits_sure",
        "<=",
        0.05,
        "reading: non-digits read as sure (scribbles, letters no digit is written like, smudges)",
    ),
]


# the rows that run on full MNIST or not at all (the others use the offline sample without it)
NEED_FULL_MNIST = ("fast_baseline", "default_study_full_mnist", "digit_score", "cache_command")


def applies(key: str, r: dict) -> str | None:
    """Why a target does not apply to this run (None: it does)."""
    if key == "bf16_vs_float32_train" and r.get("precision_auto_chooses") == "float32":
        return "n/a: the probe measured bf16 slower here, so no run uses it"
    if key not in r and key.startswith(NEED_FULL_MNIST) and not r.get("full_mnist"):
        return "not measured: needs full MNIST (--data PATH/mnist.npz, or DATA= for make)"
    if key not in r:
        return "not measured in this mode" + ("" if r["mode"] == "full" else " (make bench-full)")
    return None


def study_gap_note(r: dict) -> str:
    """How the default study's gap to the exact training was read: the seeds' paired gaps and their mean's
    95% interval."""
    gaps = ", ".join(
        f"{seed}: {gap:+.2f}"
        for seed, gap in zip(r["study_fast_seeds"], r["study_seed_gaps_points"], strict=True)
    )
    note = "mean of {n} seeds' paired gaps, fast - exact, {gaps}; {what}: its 95% interval, +-{i:.2f} "
    note += "points, {holds} 0"
    return note.format(
        n=len(r["study_seed_gaps_points"]),
        gaps=gaps,
        what="within seed noise" if r["study_gap_within_seed_noise"] else "beyond seed noise",
        i=r["study_gap_interval_points"],
        holds="holds" if r["study_gap_within_seed_noise"] else "does not hold",
    )


def score_targets(r: dict) -> None:
    """r["targets"]: each target's value, bound, whether it is met (None: not measured or not applying)
    and a note on how it was read."""
    r["targets"] = {}
    for key, op, bound, _ in TARGETS:
        value, skipped = r.get(key), applies(key, r)
        if skipped:
            r["targets"][key] = {"value": value, "target": f"{op} {bound}", "met": None, "note": skipped}
            continue
        met = value is not None and bool(value >= bound if op == ">=" else value <= bound)
        r["targets"][key] = {"value": value, "target": f"{op} {bound}", "met": met}
        if key == "fast_baseline_vs_keras_io_to_99" and r.get("keras_io_time_to_99_estimated"):
            note = "keras-io: {keras_io_epochs_timed} epochs timed, the rest estimated".format(**r)
            r["targets"][key]["note"] = note
        if key == "study_accuracy_gap_points" and "study_seed_gaps_points" in r:
            r["targets"][key]["note"] = study_gap_note(r)
