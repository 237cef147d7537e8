"""Checks of the composed config that Hydra cannot make: types and ranges, named by their dotted key.

Runs right after composition, before TensorFlow is imported, so a bad value costs a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig

from src import UserError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# training.strategy: what src/training/distribute.py builds
STRATEGIES = ("default", "mirrored")
MULTI_WORKER_BLOCKED = (
    "training.strategy=multi_worker: Keras 3's fit does not train under TensorFlow's "
    "MultiWorkerMirroredStrategy (keras-team/keras#20585, open). Use mirrored for the devices of one host, "
    "and a cluster launcher to spread the runs of a sweep over hosts"
)


def _whole(cfg, key: str, minimum: int, allow_none: bool = False) -> None:
    value = _get(cfg, key)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{key}: {value!r} is not a whole number >= {minimum}")


def _number(cfg, key: str, low: float, high: float | None = None, low_open: bool = True) -> None:
    value = _get(cfg, key)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value < high)
    if not ok:
        bounds = f"{'>' if low_open else '>='} {low}" + (f" and < {high}" if high is not None else "")
        raise UserError(f"{key}: {value!r} is not a number {bounds}")


def _choice(cfg, key: str, choices: tuple) -> None:
    value = _get(cfg, key)
    if value not in choices:
        raise UserError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")


def _get(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def weights_file(backbone) -> Path | None:
    """backbone.weights as a file (None: imagenet or random init); a file that is not there is refused."""
    if backbone.weights in (None, "imagenet"):
        return None
    path = Path(backbone.weights).expanduser().absolute()
    if not path.is_file():
        raise UserError(f"backbone.weights: no such file: {path} (valid: imagenet, null or a weights file)")
    return path


def validate_training(cfg: DictConfig) -> None:
    """The values of a training run: fails with the key, the bad value and what would be valid."""
    weights_file(cfg.backbone)
    _whole(cfg, "training.epochs", 1)
    _whole(cfg, "training.batch_size", 1)
    _whole(cfg, "training.seed", 0)
    _choice(cfg, "training.deterministic", (True, False))
    _whole(cfg, "input_size", cfg.backbone.get("min_input_size", 32))
    _choice(cfg, "backbone.channels", (1, 3))
    if str(cfg.backbone.network._target_).startswith("keras.applications.") and cfg.backbone.channels != 3:
        raise UserError(
            f"backbone.channels: {cfg.backbone.name} takes 3 channels (ImageNet's colour pictures)"
        )
    _whole(cfg, "data.train_limit", 1, allow_none=True)
    _whole(cfg, "data.test_limit", 1, allow_none=True)
    _number(cfg, "data.val_split", 0.0, 1.0, low_open=False)
    if cfg.data.name == "folder":
        _number(cfg, "data.test_split", 0.0, 1.0, low_open=False)
        _number(cfg, "data.mix_mnist", 0.0, 1.0, low_open=False)
        _choice(cfg, "data.strict", (True, False))
        _whole(cfg, "data.workers", 1, allow_none=True)
    if cfg.data.val_split == 0 and cfg.training.enabled:
        raise UserError(
            "data.val_split: 0 leaves no validation split, and early stopping, calibration and the champion "
            "are chosen on it, never on the test set; hold out a fraction, e.g. data.val_split=0.1"
        )
    if not isinstance(cfg.training.optimizer.get("learning_rate"), Mapping | type(None)):  # else a schedule
        _number(cfg, "training.optimizer.learning_rate", 0.0)
    _choice(cfg, "training.precision", ("auto", "float32", "mixed_bfloat16", "mixed_float16"))
    _whole(cfg, "training.echo_views", 0)
    _whole(cfg, "training.train_eval_sample", 1, allow_none=True)
    if cfg.training.get("non_digits") is not None:
        _number(cfg, "training.non_digits.share", 0.0, 1.0, low_open=False)
        _number(cfg, "training.non_digits.as_read", 0.0, 1.0, low_open=False)
    _whole(cfg, "training.digit_score.sample", 0)
    _whole(cfg, "training.digit_score.hidden", 0)
    _choice(cfg, "training.digit_score.when", ("read", "training"))
    _number(cfg, "training.digit_score.keep", 0.5, 1.0)
    if cfg.training.digit_score.get("keep_cut") is not None:
        _number(cfg, "training.digit_score.keep_cut", 0.5, float(cfg.training.digit_score.keep))
    _choice(cfg, "training.verbose", ("auto", 0, 1, 2))
    _choice(cfg, "training.feature_cache", ("auto", False))
    _choice(cfg, "training.jit_compile", ("auto", True, False))
    validate_champion(cfg.tracking)
    if cfg.training.steps_per_execution != "auto":
        _whole(cfg, "training.steps_per_execution", 1)
        if cfg.training.strategy == "mirrored" and cfg.training.steps_per_execution > 1:
            raise UserError(
                "training.steps_per_execution: Keras 3 cannot run several steps per call under "
                "training.strategy=mirrored (keras-team/keras#19246); use 1 or auto"
            )
    _choice(cfg, "training.checkpoints", (True, False))
    _choice(cfg, "training.calibrate", (True, False))
    if cfg.training.strategy == "multi_worker":
        raise UserError(MULTI_WORKER_BLOCKED)
    _choice(cfg, "training.strategy", STRATEGIES)
    _whole(cfg, "training.cpu_devices", 1)
    devices = cfg.training.devices
    if devices is not None and (isinstance(devices, str) or not all(isinstance(d, str) for d in devices)):
        raise UserError(f"training.devices: {devices!r} is not null or a list of device names")
    init_from = cfg.training.get("init_from")
    if init_from is not None and (not isinstance(init_from, str) or not init_from):
        raise UserError(
            f"training.init_from: {init_from!r} is not an MLflow model URI (e.g. models:/name@alias)"
        )
    if cfg.training.resume is not None and not isinstance(cfg.training.resume, str):
        raise UserError(f"training.resume: {cfg.training.resume!r} is not an MLflow run id")
    tags = cfg.tracking.tags
    if not isinstance(tags, Mapping) or not all(
        isinstance(v, str | int | float | bool) for v in tags.values()
    ):
        raise UserError(f"tracking.tags: {tags!r} is not a mapping of tag names to values")
    _choice(cfg, "backbone.freeze_batchnorm", (True, False))
    if cfg.backbone.fine_tune is not None and not isinstance(cfg.backbone.fine_tune, str):
        raise UserError(f"backbone.fine_tune: {cfg.backbone.fine_tune!r} is not null, all or a layer name")


def validate_champion(tracking: DictConfig) -> None:
    """The champion is chosen on validation (or training) scores: the test set never chooses."""
    metric = str(tracking.champion.metric)
    if metric.startswith("test_"):
        raise UserError(
            f"tracking.champion.metric={metric}: the test set never chooses a model; use a validation "
            "metric, e.g. final_val_accuracy (or final_val_loss with mode=min)"
        )
    if tracking.champion.mode not in ("max", "min"):
        raise UserError(f"tracking.champion.mode={tracking.champion.mode}: choose one of max, min")
    delta = tracking.champion.get("min_delta", 0.0)
    if isinstance(delta, bool) or not isinstance(delta, int | float) or delta < 0:
        raise UserError(f"tracking.champion.min_delta={delta}: a number of at least 0")


def _config_dir(config_name: str) -> tuple[Path, str]:
    """A command's config folder and name: `train` is conf/train.yaml, `commands/predict` has conf/commands/
    as its own folder (as `python -m src.predict` composes it)."""
    folder, _, name = config_name.rpartition("/")
    return CONF_DIR / folder, name


def compose(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train") -> DictConfig:
    """The config `python -m src.train <overrides>` composes (Hydra's Compose API, nothing run); a bad
    override is a UserError in Hydra's words."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    folder, name = _config_dir(config_name)
    try:
        with initialize_config_dir(config_dir=str(folder), version_base="1.3"):
            return hydra_compose(config_name=name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(" ".join(str(e).split())) from None


# Schemas of the commands' own configs (conf/commands/: predict, draw, export): Hydra checks the types
# of their keys as it composes (`top=three` is refused with the key's name), the YAML keeps the values.
@dataclass
class PredictConfig:
    model: str = MISSING
    images: Any = None  # a path, a glob or a list of them
    json: bool = False
    top: int = 3
    tracking_uri: Optional[str] = None  # noqa: UP045 (OmegaConf reads Optional, not X | None, on 3.10)
    sure: float = 0.98


@dataclass
class DrawConfig:
    model: str = MISSING
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: float = 5.0
    top: int = 3
    tracking_uri: Optional[str] = None  # noqa: UP045
    sure: float = 0.98
    corrections: Optional[str] = None  # noqa: UP045


@dataclass
class ExportConfig:
    model: str = MISSING
    format: str = "saved_model"
    out: Optional[str] = None  # noqa: UP045
    tracking_uri: Optional[str] = None  # noqa: UP045
    digits: Optional[str] = None  # noqa: UP045
    parity_digits: int = 1000
    log: bool = True


def register_schemas() -> None:
    """Put the schemas in Hydra's ConfigStore, where the commands' YAML files name them in their defaults."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="predict_schema", node=PredictConfig)
    store.store(name="draw_schema", node=DrawConfig)
    store.store(name="export_schema", node=ExportConfig)


# --help: each key of a composed config with the YAML comment above it (or beside it), read from the files
# the config was composed from; a key without one of its own is told by its parent's
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
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_schemas()
    folder, name = _config_dir(config_name)
    with initialize_config_dir(config_dir=str(folder), version_base="1.3"):
        cfg = hydra_compose(config_name=name, overrides=list(overrides), return_hydra_config=True)
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


def leaf_keys(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """A composed config's keys down to their values (lists are values), dotted, without Hydra's own."""
    from omegaconf import OmegaConf

    tree: dict = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg  # type: ignore[assignment]
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key!s}"
        if dotted == "hydra":
            continue
        if isinstance(value, dict) and value:
            leaves.update(leaf_keys(value, f"{dotted}."))
        else:
            leaves[dotted] = value
    return leaves


def description_of(key: str, described: Mapping[str, str]) -> tuple[str, str] | None:
    """The comment that tells what `key` is: its own, else its nearest parent's (key, text)."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        owner = ".".join(parts[:end])
        if owner in described:
            return owner, described[owner]
    return None
