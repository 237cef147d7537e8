"""What a training fits, and on what: its route (exact, cached or echoed; src/training/features.py says
when each applies) and the inputs of each split for that route."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from src.data import Digits
from src.results import FeatureCache

if TYPE_CHECKING:
    from src.models.networks import Network

log = logging.getLogger(__name__)


@dataclass
class Route:
    name: str  # exact, cached or echoed
    why: str
    trainee: Any  # the Keras model that fits and is scored: the whole network, or its top on features
    inputs: dict[str, np.ndarray]  # the trainee's inputs by split: train, validation, test
    augment: Any  # the augmentation layer, or None
    feature_cache: FeatureCache  # where the features came from, and how long they took


def choose(cfg: DictConfig, network: Network, digits: Digits) -> Route:
    """The run's route and why, with the backbone features it trains on (cached or computed now) unless
    it is exact."""
    from src.training import features
    from src.training.augmentation import augmentation

    name, why = features.route(cfg, network)
    log.info("training route: %s (%s)", name, why)
    augment = augmentation(cfg)
    if name == "exact":
        inputs = {"train": digits.x_train, "validation": digits.x_val, "test": digits.x_test}
        inputs = {k: x[..., None] for k, x in inputs.items()}
        return Route(name, why, network.trainee, inputs, augment, FeatureCache(f"off: {why}"))
    inputs, source, seconds, test_seconds = features.backbone_features(
        network,
        digits,
        cfg.training.feature_cache_dir,
        batch_size=max(256, cfg.training.batch_size),
        augment=augment if name == "echoed" else None,
        views=cfg.training.echo_views,
        echo={
            "augmentation": OmegaConf.to_container(cfg.augmentation.layers),
            "views": cfg.training.echo_views,
            "seed": cfg.training.seed,
        },
    )
    return Route(name, why, network.top, inputs, augment, FeatureCache(source, seconds, test_seconds))
