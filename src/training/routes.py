"""What a training fits, and on what: its route (exact, cached or echoed; src/training/features.py says
when each applies) and the inputs of each split for that route."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from src.data import Digits

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


def choose(cfg: DictConfig, network: Network, digits: Digits) -> Route:
    """The run's route, recorded on the run (once it is open: src/tracking/opening.py), with the backbone
    features it trains on (cached or computed now) unless it is exact."""
    from src import tracking
    from src.training import features
    from src.training.augmentation import augmentation

    name, why = features.route(cfg, network)
    log.info("training route: %s (%s)", name, why)
    # lambdas: even looking tracking.log_route up imports MLflow, which the run's opening thread may be
    # importing now
    tracking.when_open(lambda: tracking.log_route(name, why))
    augment = augmentation(cfg)
    if name == "exact":
        tracking.when_open(lambda: tracking.log_feature_cache(f"off: {why}", None))
        inputs = {"train": digits.x_train, "validation": digits.x_val, "test": digits.x_test}
        return Route(name, why, network.trainee, {k: x[..., None] for k, x in inputs.items()}, augment)
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
    tracking.when_open(lambda: tracking.log_feature_cache(source, seconds, test_seconds))
    return Route(name, why, network.top, inputs, augment)
