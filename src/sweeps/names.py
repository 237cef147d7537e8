"""A sweep's job named by what the sweep varies (`vgg19`, `resnet50-lr0.001`), its long numbers shortened."""

from __future__ import annotations

_SHORT = {"learning_rate": "lr", "batch_size": "bs"}


def run_name(job_overrides: list[str], sweep_overrides: list[str]) -> str:
    """`vgg19`, `resnet50-lr0.001`: the job's overrides that the sweep varies, values first."""
    varied = [o.lstrip("+~").partition("=")[::2] for o in job_overrides if o not in sweep_overrides]
    leaves = [key.rsplit(".", 1)[-1] for key, _ in varied]
    parts = []
    for key, value in varied:
        value = short_number(value)
        if "." not in key:  # a config group choice speaks for itself
            parts.append(value)
            continue
        leaf = key.rsplit(".", 1)[-1]
        if leaves.count(leaf) > 1:  # top.layers.1.rate and top.layers.3.rate: keep what tells them apart
            leaf = ".".join(key.rsplit(".", 2)[-2:])
        parts.append(f"{_SHORT[leaf]}{value}" if leaf in _SHORT else f"{leaf}={value}")
    return "-".join(parts)


def short_number(value: str, digits: int = 3) -> str:
    """A long number as text in `digits` significant digits: Optuna's 0.0005611516415334506 reads as
    0.000561 in a run name (0.0005612 in a table); anything else as it is."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if len(value) <= 8 else f"{number:.{digits}g}"
