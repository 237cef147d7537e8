"""What a bench writes: its JSON and tables under --out, and the results page (docs/results.md) rendered
from the latest JSON of each mode kept beside it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bench.targets import TARGETS, score_targets

# The results page: what the latest bench of each mode measured, rendered from the JSON kept beside it
RESULTS_PAGE = "results.md"
MODES = {
    "full": ("The full bench", "make bench-full DATA=path/mnist.npz"),
    "quick": ("The quick bench", "make bench DATA=path/mnist.npz"),
}


def target_rows(r: dict) -> list[str]:
    """The targets' table, from r["targets"] (score_targets)."""
    lines = ["| measure | value | target | met |", "| --- | --- | --- | --- |"]
    for key, _, _, label in TARGETS:
        target = r["targets"].get(key)
        if target is None:
            continue
        value, note = target["value"], target.get("note")
        shown = "-" if value is None else f"{value:.3g}"
        if target["met"] is None:
            met = note
        else:
            met = ("yes" if target["met"] else "no") + (f" ({note})" if note else "")
        lines.append(f"| {label} | {shown} | {target['target']} | {met} |")
    return lines


def scaling_rows(r: dict) -> list[str]:
    if not r.get("scaling"):
        return []
    return [
        "",
        "The default study (25 epochs, early stopping on, the fast route) against the data",
        "(log-log plot: scaling.png):",
        "",
        "| training digits | whole command (s) | peak memory (GiB) | test accuracy |",
        "| --- | --- | --- | --- |",
        *(
            "| {train_size} | {wall_s:.1f} | {peak_memory_gib:.2f} | {test_accuracy:.4f} |".format(**row)
            for row in r["scaling"]
        ),
    ]


def write(r: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    score_targets(r)
    lines = [
        f"# make bench ({r['mode']}), {r['date']}",
        "",
        "{cpus} CPUs ({processor}), TensorFlow {tensorflow}, Keras {keras}".format(**r["machine"]),
        "",
        *target_rows(r),
        *scaling_rows(r),
    ]
    lines += ["", "| detail | value |", "| --- | --- |"]
    for key, value in r.items():
        if key not in ("targets", "machine", "date", "mode", "scaling"):
            lines.append(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |")
    # numpy's numbers as Python's (a numpy bool once failed the write at the end of a whole bench)
    text = as_json(r)
    (out / f"bench-{stamp}.json").write_text(text)
    markdown = "\n".join(lines) + "\n"
    (out / f"bench-{stamp}.md").write_text(markdown)
    (out / "latest.json").write_text(text)
    (out / "latest.md").write_text(markdown)
    (out / "partial.json").unlink(missing_ok=True)
    print(markdown)
    print(f"written to {out}/bench-{stamp}.json and .md")


def as_json(r: dict) -> str:
    return json.dumps(r, indent=2, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)) + "\n"


def results_json(docs: Path, mode: str) -> Path:
    return docs / "results" / f"bench-{mode}.json"


def publish(r: dict, docs: Path) -> None:
    """A finished bench's JSON beside the results page, and the page again."""
    path = results_json(docs, r["mode"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(as_json(r))
    write_results_page(docs)
    print(f"written to {path} and {docs / RESULTS_PAGE}")


def write_results_page(docs: Path) -> None:
    runs = {mode: results_json(docs, mode) for mode in MODES}
    loaded = {mode: json.loads(path.read_text()) for mode, path in runs.items() if path.is_file()}
    (docs / RESULTS_PAGE).write_text(results_page(loaded))


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{seconds / 60:.1f} min"


def recorded(r: dict) -> str:
    """Where, when and at which commit a bench was measured, and how long it took."""
    machine = r.get("machine", {})
    cpu = machine.get("cpu") or machine.get("processor", "?")
    versions = ", ".join(
        f"{name} {machine[key]}"
        for key, name in (("python", "Python"), ("tensorflow", "TensorFlow"), ("keras", "Keras"))
        if key in machine
    )
    return (
        f"Recorded {r['date']} on {machine.get('cpus', '?')} cores of {cpu}"
        + (f" ({versions})" if versions else "")
        + f", at commit {r.get('commit', 'unknown')}"
        + (f"; the whole bench took {_duration(r['bench_s'])}." if "bench_s" in r else ".")
    )


def mode_section(r: dict) -> list[str]:
    """One mode's bench on the results page: where it ran, its targets, its scaling, its steps' times."""
    lines = [recorded(r)]
    if r.get("recorded_from"):
        lines += ["", r["recorded_from"]]
    if "targets" not in r:
        score_targets(r)
    lines += ["", *target_rows(r), *scaling_rows(r)]
    if r.get("bench_steps_s"):
        lines += ["", "| step | time (s) |", "| --- | --- |"]
        lines += [f"| {name} | {seconds:g} |" for name, seconds in r["bench_steps_s"].items()]
    return lines


def results_page(runs: dict[str, dict]) -> str:
    """docs/results.md: each mode's latest bench (`runs`: its JSON by mode), with the machine, the date
    and the commit it was measured at."""
    lines = [
        "# Results",
        "",
        "What the bench measured, each table with the machine, the date and the commit it was measured",
        "at. `make bench` and `make bench-full` write this page and the JSON beside it",
        "(`docs/results/bench-quick.json`, `bench-full.json`) when they finish; the other pages link here",
        "instead of copying figures. Do not edit it by hand: `tests/test_docs.py` renders it again from",
        "the JSON and fails where they differ (`python -m bench --page` writes it from the JSON).",
        "What the rows measure and how: [Speed](speed.md).",
    ]
    for mode, (title, command) in MODES.items():
        lines += ["", f"## {title}: `{command.split(' DATA')[0]}`", ""]
        r = runs.get(mode)
        if r is None:
            lines.append(f"No run of this mode is recorded yet: `{command}` writes one here.")
            continue
        lines += mode_section(r)
    return "\n".join(lines) + "\n"
