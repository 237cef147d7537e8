"""The docs a newcomer reads: a quiet terminal, --help that says what the keys mean, documented commands
that compose, and a results page that is the bench's JSON, not a copy of it."""

from __future__ import annotations

import glob
import importlib
import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from src import UserError, config, key_help

ROOT = config.CONF_DIR.parent

# TensorFlow's start-up lines on a machine without a GPU (src/__init__.py: STARTUP_NOTES, CUDA_PROBE)
NOISE = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "failed call to cuInit",
    "rebuild TensorFlow with the appropriate compiler flags",
    "This TensorFlow binary is optimized",
)


def clean_env(tmp_path, **extra: str) -> dict:
    """A shell with nothing set but PATH and an empty HOME (no TF_CPP_MIN_LOG_LEVEL, no CUDA_*)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "HOME": str(home), **extra}


def python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


STARTS_TENSORFLOW = "import src, tensorflow as tf; print(float(tf.constant(1.0) + 1))"


def test_tensorflow_starts_quietly_and_its_own_errors_stay(tmp_path):
    probe_fails = not glob.glob("/dev/nvidia[0-9]*")  # no NVIDIA device here: TensorFlow's CUDA probe fails
    # without the project's setting the lines are there (the test can fail)
    loud = python(STARTS_TENSORFLOW, clean_env(tmp_path, HANDWRITTEN_DIGITS_TF_NOTES="1"))
    # which notes TensorFlow writes depends on the machine (oneDNN's only where it turns oneDNN on: not on a
    # CPU without AVX-512), but some are always there
    notes = [line for line in NOISE if line in loud.stderr and line != "failed call to cuInit"]
    assert loud.returncode == 0 and notes, loud.stderr
    assert ("failed call to cuInit" in loud.stderr) is probe_fails
    # a look-up of TensorFlow before its import (as libraries do to see what is installed) changes nothing
    looked_up = "import importlib.util, src; importlib.util.find_spec('tensorflow'); " + STARTS_TENSORFLOW
    quiet = python(looked_up, clean_env(tmp_path))
    assert quiet.returncode == 0 and quiet.stdout.strip() == "2.0"
    assert not [line for line in NOISE if line in quiet.stderr], quiet.stderr
    # a GPU asked for that cannot be reached is an error worth seeing: the CUDA probe's line stays
    asked = python(STARTS_TENSORFLOW, clean_env(tmp_path, CUDA_VISIBLE_DEVICES="0"))
    assert ("failed call to cuInit" in asked.stderr) is probe_fails
    assert "oneDNN custom operations are on" not in asked.stderr


def test_what_else_is_written_while_tensorflow_loads_is_kept(tmp_path):
    code = (
        "import os, src\n"
        "with src.startup_notes_dropped(src.STARTUP_NOTES):\n"
        "    os.write(2, b'I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. x\\n')\n"
        "    os.write(2, b'E0000 00:00:1.0 1 loader.cc:1] a real error\\n')\n"
        "    print('a warning from Python', file=__import__('sys').stderr)\n"
    )
    result = python(code, clean_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "E0000 00:00:1.0 1 loader.cc:1] a real error",
        "a warning from Python",
    ]


@pytest.mark.slow
def test_predict_on_a_picture_prints_only_its_reading(digit_model, tmp_path):
    digits = np.load(ROOT / "src" / "data" / "mnist_sample.npz")
    x, y = digits["x_test"], digits["y_test"]
    picture = 255 - np.kron(x[0], np.ones((4, 4), np.uint8))  # black on white, 112 pixels
    page = np.full((160, 200), 255, np.uint8)
    page[24:136, 44:156] = picture
    Image.fromarray(page).save(tmp_path / "digit.png")
    result = subprocess.run(
        [sys.executable, "-m", "src.predict", f"model={digit_model['model']}", "images=digit.png"],
        cwd=tmp_path,
        env=clean_env(tmp_path, MLFLOW_TRACKING_URI=digit_model["uri"]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"digit.png: {y[0]}")
    assert not [line for line in NOISE if line in result.stderr], result.stderr


def test_the_results_page_is_the_bench_json_rendered():
    """docs/results.md is what `make bench` writes from docs/results/*.json: a figure edited by hand in
    either shows here."""
    import bench

    docs = ROOT / "docs"
    files = {mode: bench.results_json(docs, mode) for mode in bench.MODES}
    runs = {mode: json.loads(path.read_text()) for mode, path in files.items() if path.is_file()}
    assert runs, "no bench JSON beside docs/results.md"
    page = (docs / "results.md").read_text()
    assert page == bench.results_page(runs), "docs/results.md is not its JSON: python -m bench --page"
    for r in runs.values():  # every table says where and when it was measured
        assert r["date"] in page and r["commit"] in page and r["machine"]["cpus"]


def test_a_bench_writes_its_json_and_the_page(tmp_path):
    import bench

    r = {
        "mode": "quick", "date": "2026-12-07 10:00:00", "commit": "abc1234", "full_mnist": None,
        "machine": {"cpus": 2, "processor": "x86_64", "cpu": "Some CPU (family 1, model 2)"},
        "startup_s": 6.25, "latency_p50_ms": 31.0, "bench_s": 500.0,
    }  # fmt: skip
    bench.publish(r, tmp_path)
    page = (tmp_path / "results.md").read_text()
    assert (
        "Recorded 2026-12-07 10:00:00 on 2 cores of Some CPU (family 1, model 2), at commit abc1234" in page
    )
    assert "| command start to first training step (s) | 6.25 | <= 10.0 | yes |" in page
    assert "| single-digit prediction p50 (ms) | 31 | <= 20.0 | no |" in page
    assert "No run of this mode is recorded yet: `make bench-full" in page
    assert json.loads(bench.results_json(tmp_path, "quick").read_text())["startup_s"] == 6.25
    # a figure edited by hand on the page no longer matches its JSON
    edited = page.replace("| 6.25 |", "| 5.25 |")
    runs = {"quick": json.loads(bench.results_json(tmp_path, "quick").read_text())}
    assert edited != bench.results_page(runs) and page == bench.results_page(runs)


# Every command the docs show: `python -m src.<command> ...` and `python -m bench ...` (also
# `.venv/bin/python -m ...`, after `$ ` or variables, in code blocks with `\` continuations and in inline
# code), and `make train|sweep ARGS=...`
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"(?:^|\s)(?:\.venv/bin/)?python -m (src\.\w+|bench\b)(.*)$")
MAKE = re.compile(r"^(?:\$ )?make (train|sweep) ARGS=(\"[^\"]*\"|'[^']*')")
HYDRA_APPS = {
    "src.train": "train",
    "src.evaluate": "evaluate",
    "src.predict": "commands/predict",
    "src.draw": "commands/draw",
    "src.export": "commands/export",
}


def documented_commands() -> list[tuple[str, list[str], str | None]]:
    """(where, [module, *arguments], expected error) for each command line of README.md and docs/*.md. A
    command shown in a `text` block with `error: ...` or Hydra's `In '...'` under it is expected to fail
    with that message."""
    found = []
    for path in DOC_FILES:
        where, block, logical = path.relative_to(ROOT), None, ""
        lines = path.read_text().splitlines()
        candidates: list[tuple[int, str, str | None]] = []
        for n, line in enumerate(lines, start=1):
            if line.strip().startswith("```"):
                block = None if block is not None else line.strip().removeprefix("```")
                continue
            if block is not None:
                logical += line.strip().removesuffix("\\")
                if line.rstrip().endswith("\\"):
                    logical += " "
                    continue
                shown = lines[n].strip() if n < len(lines) else ""
                fails = block == "text" and shown.startswith(("error:", "In '"))
                candidates.append((n, logical, shown if fails else None))
                logical = ""
            else:  # inline code in the prose
                spans = re.findall(r"`([^`]*python -m (?:src\.|bench\b)[^`]*)`", line)
                candidates += [(n, span, None) for span in spans]
        for n, text, expected in candidates:
            text = re.split(r"\s#", text)[0]  # a shell comment
            if match := COMMAND.search(text):
                module, rest = match.groups()
                rest = re.sub(r"<[^<>]+>", "placeholder", rest)  # <id>, <id_a>: any value the reader has
                found.append((f"{where}:{n}", [module, *shlex.split(rest)], expected))
            elif match := MAKE.match(text.strip()):
                target, args = match.groups()
                preset = ["+experiment=compare_backbones"] if target == "sweep" else []
                found.append((f"{where}:{n}", ["src.train", *preset, *shlex.split(args[1:-1])], expected))
    return found


def hydra_jobs(arguments: list[str]) -> list[list[str]]:
    """The overrides of each job a Hydra command line runs (its first and last job for a sweep), without
    Hydra's own flags."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides, skip = [], False
    for arg in arguments:
        if skip or arg in ("-m", "--multirun", "--help", "-h"):
            skip = False
            continue
        if arg == "--cfg":
            skip = True
            continue
        overrides.append(arg)
    parsed = OverridesParser.create().parse_overrides(overrides)
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    return [jobs[0], jobs[-1]]


def check(module: str, arguments: list[str]) -> None:
    """Compose a documented command without running it: Hydra's commands with Hydra (keys exist, values
    accepted), the others through their own options. A UserError or SystemExit says what is wrong."""
    from hydra.core.plugins import Plugins

    from src.tracking import rebuild

    Plugins.instance()  # the sweepers and launchers (hydra/sweeper=optuna_search), as hydra.main finds them
    config.register_schemas()  # the commands' schemas (predict_schema, ...), as their modules do
    if module == "src.rerun":
        _, arguments = rebuild.parse(arguments)
        module = "src.train"
    if module in HYDRA_APPS:
        for overrides in hydra_jobs(arguments):
            cfg = config.compose(overrides, HYDRA_APPS[module])
            if module in ("src.train", "src.evaluate"):
                config.validate_training(cfg)
        return
    command = importlib.import_module(module)
    parser = command.arguments()
    if module == "src.server":  # options it does not know go to `mlflow server`
        parser.parse_known_args(arguments)
    else:
        parser.parse_args(arguments)


def test_the_docs_show_commands_of_every_kind():
    commands = documented_commands()
    modules = {module for _, (module, *_), _ in commands}
    assert set(HYDRA_APPS) | {"src.rerun", "src.compare", "src.ui", "bench"} <= modules
    assert len(commands) > 60


@pytest.mark.parametrize(("where", "command", "expected"), documented_commands(), ids=str)
def test_a_documented_command_composes(where, command, expected):
    module, *arguments = command
    if expected is not None:  # shown failing: it fails as shown
        with pytest.raises(UserError) as refused:
            check(module, arguments)
        assert expected in str(refused.value), f"{where}: the docs show {expected!r}"
        return
    try:
        check(module, arguments)
    except (UserError, SystemExit) as e:
        pytest.fail(f"{where}: python -m {' '.join(command)}: {e}")


@pytest.mark.parametrize(
    "command",
    [
        ["src.train", "training.epoch=3"],  # a key renamed (training.epochs)
        ["src.train", "-m", "backbone=vgg16,resnet18"],  # a choice that is not there, in a sweep's last job
        ["src.train", "training.batch_size=-4"],  # a value refused
        ["src.predict", "images=number.png", "sure=high"],  # a value of the wrong type
        ["src.rerun", "run_id=<id>", "training.seeds=1"],
        ["src.compare", "--sweeps", "x"],
        ["src.ui", "--port", "five"],
    ],
)
def test_a_wrong_command_is_caught(command):
    module, *arguments = command
    with pytest.raises((UserError, SystemExit)):
        check(module, arguments)


def test_every_key_has_a_description_and_help_shows_it():
    cases: list[tuple[str, list[str]]] = [("train", [])]
    for group in ("data", "backbone", "top", "augmentation", "training/optimizer", "training/distribute",
                  "training/cache", "tracking"):  # fmt: skip
        cases += [("train", [f"{group}={p.stem}"]) for p in sorted((config.CONF_DIR / group).glob("*.yaml"))]
    cases += [
        ("train", [f"+experiment={p.stem}"]) for p in sorted((config.CONF_DIR / "experiment").glob("*.yaml"))
    ]
    cases += [("evaluate", []), ("commands/predict", []), ("commands/draw", []), ("commands/export", [])]
    from hydra.core.plugins import Plugins

    Plugins.instance()
    missing = []
    for name, overrides in cases:
        described = key_help.key_descriptions(name, overrides)
        for key in key_help.leaf_keys(config.compose(overrides, name)):
            if key_help.description_of(key, described) is None:
                missing.append(f"{name} {overrides}: {key}")
    assert not missing, "keys without a comment in their YAML file: " + ", ".join(missing)


def test_help_says_what_the_command_does_and_what_its_keys_mean(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "src.predict", "--help"], cwd=ROOT, env=clean_env(tmp_path),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Read the digits in pictures with a trained model.")
    lines = result.stdout.splitlines()
    sure = lines.index("  sure=0.98")
    assert lines[sure + 1].strip().startswith("A digit whose (calibrated) probability is below this")
    assert "  images=null" in lines and "The pictures to read" in lines[lines.index("  images=null") + 1]
    text = subprocess.run(
        [sys.executable, "-m", "src.train", "backbone=simple_cnn", "--help"],
        cwd=ROOT, env=clean_env(tmp_path), capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert "  backbone.network.filters=[32, 64]" in text
    assert "  backbone: resnet50, simple_cnn, vgg16, vgg19" in text


def test_every_page_is_in_the_nav():
    import yaml

    def pages(nav) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, dict):
            return [p for value in nav.values() for p in pages(value)]
        return [p for item in nav for p in pages(item)]

    site = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))
    in_nav = set(pages(site["nav"]))
    on_disk = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert on_disk <= in_nav, f"pages missing from mkdocs.yml's nav: {sorted(on_disk - in_nav)}"
    assert in_nav <= on_disk, f"the nav names pages that do not exist: {sorted(in_nav - on_disk)}"
