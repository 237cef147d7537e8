"""A fine-tune: a training that starts from a logged model's weights (training.init_from, any MLflow
model URI), with the network config of the run that logged it.

What can be refused is refused before TensorFlow loads: a model that is not there, or a command line that
asks for another network than the model's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf, open_dict

from src import UserError

if TYPE_CHECKING:
    from src.models.networks import Network

log = logging.getLogger(__name__)

# the keys that make the network: they are the model's, read from its run; but what of it trains is the
# fine-tune's own choice
NETWORK_KEYS = ("backbone", "top", "input_size")
TRAINING_KEYS = ("fine_tune", "freeze_batchnorm")


@dataclass
class Start:
    uri: str  # as given (models:/handwritten-digits@champion); training.init_from becomes its version
    run_id: str | None  # the run that logged the model (None: a model outside any run, e.g. a folder)


def start(cfg: DictConfig, given: list[str]) -> Start | None:
    """The model a training starts from (None: from scratch), its network config put into cfg. `given`:
    the command line's overrides; one that sets a network key to other than the model's is refused."""
    uri = cfg.training.get("init_from")
    if not uri:
        return None
    from src import tracking
    from src.tracking import records

    tracking.use_store(cfg.tracking, create=False)
    try:
        info = records.model_info(uri)
    except records.NotFound as e:
        raise UserError(f"training.init_from: no model at {uri}: {e}") from None
    if "keras" not in info.flavors:
        raise UserError(
            f"training.init_from: {uri} is not a Keras classifier (flavors: {', '.join(info.flavors)})"
        )
    run_id = info.run_id or None
    if run_id:
        adopt_network(cfg, uri, run_id, given)
    with open_dict(cfg):  # the run logs the version it started from: src.rerun starts from it again
        cfg.training.init_from = records.pinned(uri)
    return Start(uri, run_id)


def adopt_network(cfg: DictConfig, uri: str, run_id: str, given: list[str]) -> None:
    """cfg's network keys set to those the model's run logged."""
    from src.tracking.rebuild import logged_config

    logged = logged_config(run_id)
    for key in NETWORK_KEYS:
        if key not in logged:
            continue
        now = OmegaConf.to_container(cfg[key], resolve=True) if key != "input_size" else cfg[key]
        then = logged[key]
        if key == "backbone" and isinstance(now, dict) and isinstance(then, dict):
            then = {**then, **{k: now[k] for k in TRAINING_KEYS if k in now}}
        if now == then:
            continue
        asked = [o for o in given if _network_key(o) == key and _contradicts(o, logged)]
        if asked:
            name = logged[key].get("name", "?") if isinstance(logged[key], dict) else logged[key]
            raise UserError(
                f"training.init_from: {uri} is a network of another {key} ({name}) than "
                f"{' '.join(asked)} asks for; a fine-tune keeps the model's network (drop the override, or "
                "train from scratch)"
            )
        with open_dict(cfg):
            cfg[key] = then
    log.info("init_from: %s (run %s); the network config is the run's", uri, run_id)


def _network_key(override: str) -> str | None:
    """The network key an override sets (backbone.filters=... -> backbone; backbone.fine_tune -> None)."""
    path = override.lstrip("+~").split("=")[0].split(".")
    if path[0] == "backbone" and len(path) > 1 and path[1] in TRAINING_KEYS:
        return None
    return path[0] if path[0] in NETWORK_KEYS else None


def _contradicts(override: str, logged: dict) -> bool:
    """An override that sets the network to other than the run logged (backbone=vgg16 for a simple_cnn,
    input_size=32 for 28); one that repeats the run's values (as src.rerun gives them) does not."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(override)
    path = parsed.key_or_group.split(".")
    node: object = logged
    for part in path:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return not parsed.is_delete()  # a key the run's network has not: added, it differs
    if parsed.is_delete():
        return True
    if len(path) == 1 and isinstance(node, dict):  # a group: backbone=vgg16
        return parsed.value() != node.get("name")
    return parsed.value() != node


def weights(begin: Start | None) -> list | None:
    """The weights of the model a training starts from (None: from scratch); Keras loads here."""
    if begin is None:
        return None
    from src.tracking import records

    try:
        model = records.load_keras_model(begin.uri)
    except records.NotFound as e:  # the store said it was there (start): a model that does not load
        raise UserError(f"training.init_from: cannot load {begin.uri}: {e}") from None
    return model.get_weights()


def given_overrides() -> list[str]:
    """The command line's overrides (none where Hydra did not start the command: the Compose API)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def build_network(cfg: DictConfig, begin: Start | None) -> Network:
    """The configured network, from scratch or from the weights of the model it starts from."""
    from src.models import networks

    try:
        return networks.build_model(cfg, strict=cfg.strict, weights=weights(begin))
    except networks.WeightsMismatch as e:
        assert begin is not None
        raise UserError(
            f"training.init_from: {begin.uri} does not match the configured network: {e}"
        ) from None
