"""Checks of the composed config that Hydra cannot make: types and ranges, named by their dotted key.

Runs right after composition, before TensorFlow is imported, so a bad value costs a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from src import UserError
from src.schema import Checked, Choice, Number, Rule, Whole, check, get

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# training.strategy: what src/training/distribute.py builds
STRATEGIES = ("default", "mirrored")
MULTI_WORKER_BLOCKED = (
    "training.strategy=multi_worker: Keras 3's fit does not train under TensorFlow's "
    "MultiWorkerMirroredStrategy (keras-team/keras#20585, open). Use mirrored for the devices of one host, "
    "and a cluster launcher to spread the runs of a sweep over hosts"
)


def weights_file(backbone: Any) -> Path | None:
    """backbone.weights as a file (None: imagenet or random init); a file that is not there is refused."""
    if backbone.weights in (None, "imagenet"):
        return None
    path = Path(backbone.weights).expanduser().absolute()
    if not path.is_file():
        raise UserError(f"backbone.weights: no such file: {path} (valid: imagenet, null or a weights file)")
    return path


# The training config's schema: a rule per key (src/schema.py), and the checks no range says, each named by
# what it asks. The values, defaults included, live in conf/ alone. The rules run in order.
def _imagenet_channels(cfg: Any) -> None:
    if str(cfg.backbone.network._target_).startswith("keras.applications.") and cfg.backbone.channels != 3:
        raise UserError(
            f"backbone.channels: {cfg.backbone.name} takes 3 channels (ImageNet's colour pictures)"
        )


def _validation_split_kept(cfg: Any) -> None:
    if cfg.data.val_split == 0 and cfg.training.enabled:
        raise UserError(
            "data.val_split: 0 leaves no validation split, and early stopping, calibration and the champion "
            "are chosen on it, never on the test set; hold out a fraction, e.g. data.val_split=0.1"
        )


def _one_step_when_mirrored(cfg: Any) -> None:
    if cfg.training.strategy == "mirrored" and cfg.training.steps_per_execution > 1:
        raise UserError(
            "training.steps_per_execution: Keras 3 cannot run several steps per call under "
            "training.strategy=mirrored (keras-team/keras#19246); use 1 or auto"
        )


def _not_multi_worker(cfg: Any) -> None:
    if cfg.training.strategy == "multi_worker":
        raise UserError(MULTI_WORKER_BLOCKED)


def _device_names(cfg: Any) -> None:
    devices = cfg.training.devices
    if devices is not None and (isinstance(devices, str) or not all(isinstance(d, str) for d in devices)):
        raise UserError(f"training.devices: {devices!r} is not null or a list of device names")


def _model_uri_or_none(cfg: Any) -> None:
    init_from = cfg.training.get("init_from")
    if init_from is not None and (not isinstance(init_from, str) or not init_from):
        raise UserError(
            f"training.init_from: {init_from!r} is not an MLflow model URI (e.g. models:/name@alias)"
        )


def _run_id_or_none(cfg: Any) -> None:
    if cfg.training.resume is not None and not isinstance(cfg.training.resume, str):
        raise UserError(f"training.resume: {cfg.training.resume!r} is not an MLflow run id")


def _tag_values(cfg: Any) -> None:
    tags = cfg.tracking.tags
    if not isinstance(tags, Mapping) or not all(
        isinstance(v, str | int | float | bool) for v in tags.values()
    ):
        raise UserError(f"tracking.tags: {tags!r} is not a mapping of tag names to values")


def _layer_or_none(cfg: Any) -> None:
    if cfg.backbone.fine_tune is not None and not isinstance(cfg.backbone.fine_tune, str):
        raise UserError(f"backbone.fine_tune: {cfg.backbone.fine_tune!r} is not null, all or a layer name")


def _validation_metric(cfg: Any) -> None:
    metric = str(get(cfg, "tracking.champion.metric"))
    if metric.startswith("test_"):
        raise UserError(
            f"tracking.champion.metric={metric}: the test set never chooses a model; use a validation "
            "metric, e.g. final_val_accuracy (or final_val_loss with mode=min)"
        )


def _folder(cfg: Any) -> bool:
    return bool(cfg.data.name == "folder")


def _fixed_rate(cfg: Any) -> bool:
    return not isinstance(
        cfg.training.optimizer.get("learning_rate"), Mapping | type(None)
    )  # else a schedule


def _non_digits(cfg: Any) -> bool:
    return cfg.training.get("non_digits") is not None


def _keep_cut(cfg: Any) -> bool:
    return cfg.training.digit_score.get("keep_cut") is not None


def _steps_given(cfg: Any) -> bool:
    return bool(cfg.training.steps_per_execution != "auto")


# the champion is chosen on validation (or training) scores: the test set never chooses
CHAMPION_SCHEMA: tuple[Rule, ...] = (
    Checked(_validation_metric),
    Choice("tracking.champion.mode", ("max", "min")),
    Number("tracking.champion.min_delta", 0.0, low_open=False),
)

TRAINING_SCHEMA: tuple[Rule, ...] = (
    Checked(lambda cfg: weights_file(cfg.backbone)),
    Whole("training.epochs", 1),
    Whole("training.batch_size", 1),
    Whole("training.seed", 0),
    Choice("training.deterministic"),
    Whole("input_size", "backbone.min_input_size"),
    Choice("backbone.channels", (1, 3)),
    Checked(_imagenet_channels),
    Whole("data.train_limit", 1, allow_none=True),
    Whole("data.test_limit", 1, allow_none=True),
    Number("data.val_split", 0.0, 1.0, low_open=False),
    Number("data.test_split", 0.0, 1.0, low_open=False, when=_folder),
    Number("data.mix_mnist", 0.0, 1.0, low_open=False, when=_folder),
    Choice("data.strict", when=_folder),
    Whole("data.workers", 1, allow_none=True, when=_folder),
    Checked(_validation_split_kept),
    Number("training.optimizer.learning_rate", 0.0, when=_fixed_rate),
    Choice("training.precision", ("auto", "float32", "mixed_bfloat16", "mixed_float16")),
    Whole("training.echo_views", 0),
    Whole("training.train_eval_sample", 1, allow_none=True),
    *(
        Number(f"training.non_digits.{share}", 0.0, 1.0, low_open=False, when=_non_digits)
        for share in ("share", "as_read", "pairs", "fonts")
    ),
    Whole("training.digit_score.sample", 0),
    Whole("training.digit_score.hidden", 0),
    Choice("training.digit_score.when", ("read", "training")),
    Number("training.digit_score.keep", 0.5, 1.0),
    Number("training.digit_score.keep_cut", 0.5, "training.digit_score.keep", when=_keep_cut),
    Choice("training.verbose", ("auto", 0, 1, 2)),
    Choice("training.feature_cache", ("auto", False)),
    Choice("training.jit_compile", ("auto", True, False)),
    *CHAMPION_SCHEMA,
    Whole("training.steps_per_execution", 1, when=_steps_given),
    Checked(_one_step_when_mirrored, when=_steps_given),
    Choice("training.checkpoints"),
    Choice("training.calibrate"),
    Checked(_not_multi_worker),
    Choice("training.strategy", STRATEGIES),
    Whole("training.cpu_devices", 1),
    Checked(_device_names),
    Checked(_model_uri_or_none),
    Checked(_run_id_or_none),
    Checked(_tag_values),
    Choice("backbone.freeze_batchnorm"),
    Checked(_layer_or_none),
)


def validate_training(cfg: DictConfig) -> None:
    """The values of a training run: fails with the key, the bad value and what would be valid."""
    check(cfg, TRAINING_SCHEMA)


def validate_champion(tracking: DictConfig) -> None:
    """The champion is chosen on validation (or training) scores: the test set never chooses."""
    check({"tracking": tracking}, CHAMPION_SCHEMA)


def _config_dir(config_name: str) -> tuple[Path, str]:
    """A command's config folder and name: `train` is conf/train.yaml, `commands/predict` has conf/commands/
    as its own folder (as `python -m src.predict` composes it)."""
    folder, _, name = config_name.rpartition("/")
    return CONF_DIR / folder, name


def compose(
    overrides: list[str] | tuple[str, ...] = (), config_name: str = "train", return_hydra_config: bool = False
) -> DictConfig:
    """The config `python -m src.train <overrides>` composes (Hydra's Compose API, nothing run); another
    command's with `config_name` (`evaluate`, `commands/predict`). A bad override is a UserError in Hydra's
    words. The one compose of the library: commands, re-runs and --help all compose through it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    folder, name = _config_dir(config_name)
    try:
        with initialize_config_dir(config_dir=str(folder), version_base="1.3"):
            return hydra_compose(
                config_name=name, overrides=list(overrides), return_hydra_config=return_hydra_config
            )
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(" ".join(str(e).split())) from None


# Schemas of the commands' own configs (conf/commands/: predict, draw, export): Hydra checks the types
# of their keys as it composes (`top=three` is refused with the key's name). Types only: every value,
# default included, lives in the command's YAML (a key the YAML does not set is an error of conf/).
@dataclass
class PredictConfig:
    model: str = MISSING
    images: Any = MISSING  # a path, a glob or a list of them
    json: bool = MISSING
    top: int = MISSING
    tracking_uri: Optional[str] = MISSING  # noqa: UP045 (OmegaConf reads Optional, not X | None, on 3.10)
    sure: float = MISSING


@dataclass
class DrawConfig:
    model: str = MISSING
    host: str = MISSING
    port: int = MISSING
    max_upload_mb: float = MISSING
    top: int = MISSING
    tracking_uri: Optional[str] = MISSING  # noqa: UP045
    sure: float = MISSING
    corrections: Optional[str] = MISSING  # noqa: UP045


@dataclass
class ExportConfig:
    model: str = MISSING
    format: str = MISSING
    out: Optional[str] = MISSING  # noqa: UP045
    tracking_uri: Optional[str] = MISSING  # noqa: UP045
    digits: Optional[str] = MISSING  # noqa: UP045
    parity_digits: int = MISSING
    log: bool = MISSING


def _probability(cfg: Any) -> None:
    sure = cfg.sure
    if isinstance(sure, bool) or not isinstance(sure, int | float) or not 0 < sure <= 1:
        raise UserError(f"sure: {sure!r} is not a probability > 0 and <= 1 (e.g. sure=0.98)")


# What a reading command's values must be beyond their types (src.predict, src.draw)
READING_SCHEMA: tuple[Rule, ...] = (Checked(_probability), Whole("top", 1))


def register_schemas() -> None:
    """Put the schemas in Hydra's ConfigStore, where the commands' YAML files name them in their defaults."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="predict_schema", node=PredictConfig)
    store.store(name="draw_schema", node=DrawConfig)
    store.store(name="export_schema", node=ExportConfig)


def leaves(node: Any, prefix: str = "", into_lists: bool = True) -> dict[str, Any]:
    """Dotted key -> value of every leaf of a config tree (a DictConfig is read unresolved; an empty list
    or mapping is a leaf). into_lists=False: a list is a leaf too (top.layers, not top.layers.0.units).
    The one flattener: a run's params (src/tracking/runs.py), a re-run's comparison with the logged config
    (src/tracking/rebuild.py) and --help's keys all read a config through it."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, Mapping) and node:
        children = [(str(key), child) for key, child in node.items()]
    elif into_lists and isinstance(node, list) and node:
        children = [(str(i), child) for i, child in enumerate(node)]
    else:
        return {prefix[:-1]: node}
    return {k: v for key, child in children for k, v in leaves(child, f"{prefix}{key}.", into_lists).items()}
