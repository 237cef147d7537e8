"""--help: each key of a composed config with the YAML comment above it (or beside it), read from the
files the config was composed from; a key without one of its own is told by its parent's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from src.config import CONF_DIR, compose, leaves, register_schemas


def _yaml_comments(path: Path, package: str) -> dict[str, str]:
    """The comment above (or beside) each key of one YAML file, by dotted key under `package`."""
    described: dict[str, str] = {}
    parents: list[tuple[int, str]] = []  # (indent, key) of the keys enclosing the line
    pending: list[str] = []
    list_indent: int | None = None  # inside a list's items (a top's layers): their keys are not described
    for line in path.read_text().splitlines():
        text = line.strip()
        indent = len(line) - len(line.lstrip())
        if not text:
            pending = []
            continue
        if text.startswith("#"):
            if not text.startswith("# @package"):
                pending.append(text.lstrip("#").strip())
            continue
        if list_indent is not None and (indent > list_indent or text.startswith("- ")):
            pending = []
            continue
        list_indent = None
        if text.startswith("- "):
            list_indent, pending = indent, []
            continue
        key, colon, rest = text.partition(":")
        if not colon or " " in key:
            pending = []
            continue
        while parents and parents[-1][0] >= indent:
            parents.pop()
        parents.append((indent, key))
        dotted = ".".join([package, *(k for _, k in parents)]).strip(".")
        beside = rest.split(" #", 1)[1].strip() if " #" in rest else ""
        if pending or beside:
            described.setdefault(dotted, " ".join(pending) or beside)
        pending = []
    return described


def _package(path: Path, group: str) -> str:
    first = path.read_text().splitlines()[:1]
    if first and first[0].startswith("# @package"):
        package = first[0].split(maxsplit=2)[2].strip()
        return "" if package == "_global_" else package
    return group.replace("/", ".")


def _group_files(group: str, choice: str) -> list[Path]:
    """A group's chosen file, and the files of its group it composes in its own defaults (mnist_sample
    builds on mnist)."""
    path = CONF_DIR / group / f"{choice}.yaml"
    if not path.is_file():
        return []
    files, in_defaults = [path], False
    for line in path.read_text().splitlines():
        if line.startswith("defaults:"):
            in_defaults = True
        elif in_defaults and line.startswith("  - ") and ":" not in line and "_self_" not in line:
            files += _group_files(group, line.split("-", 1)[1].split("#")[0].strip())
        elif in_defaults and not line.startswith(" "):
            in_defaults = False
    return files


def key_descriptions(config_name: str, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """What each key of `config_name`'s composed config (`train`, `evaluate`, `commands/predict`, ...)
    means, from the comments of the YAML files it is composed from."""
    register_schemas()
    cfg = compose(overrides, config_name, return_hydra_config=True)
    files = [(CONF_DIR / f"{config_name}.yaml", "")]
    if config_name == "evaluate":
        files.append((CONF_DIR / "train.yaml", ""))
    choices = cfg.hydra.runtime.choices
    presets: list[tuple[Path, str]] = []
    for group in sorted(choices):
        if group.startswith("hydra/") or choices[group] is None:
            continue
        chosen = [(path, _package(path, group)) for path in _group_files(group, str(choices[group]))]
        (presets if group == "experiment" else files).extend(chosen)
    described: dict[str, str] = {}
    for path, package in files:
        for key, text in _yaml_comments(path, package).items():
            described.setdefault(key, text)
    # a preset's comments say why it changes a key: they tell only the keys no group file tells
    for path, package in presets:
        for key, text in _yaml_comments(path, package).items():
            if description_of(key, described) is None:
                described[key] = text
    return described


def leaf_keys(cfg: Any) -> dict[str, Any]:
    """A composed config's keys down to their values (lists are values), dotted, without Hydra's own."""
    return {
        k: v for k, v in leaves(cfg, into_lists=False).items() if k != "hydra" and not k.startswith("hydra.")
    }


def description_of(key: str, described: Mapping[str, str]) -> tuple[str, str] | None:
    """The comment that tells what `key` is: its own, else its nearest parent's (key, text)."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        owner = ".".join(parts[:end])
        if owner in described:
            return owner, described[owner]
    return None
