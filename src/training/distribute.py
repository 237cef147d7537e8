"""Training across devices with TensorFlow's distribution strategies, chosen by `training.strategy`.

- default: one device (TensorFlow's default strategy), as on a laptop.
- mirrored: synchronous data parallelism over the devices of this host (every GPU, or the logical CPU
  devices of `training.cpu_devices`, or the list in `training.devices`).
- multi_worker: the same across hosts (TensorFlow's MultiWorkerMirroredStrategy). Keras 3's `fit` cannot
  train under it yet (keras-team/keras#20585), so the config check refuses it with that reason.

`training.batch_size` is the global batch: each of N replicas gets batch_size / N digits per step.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from src import UserError

if TYPE_CHECKING:
    import tensorflow as tf
    from omegaconf import DictConfig

log = logging.getLogger(__name__)


@dataclass
class Distribution:
    strategy: Any  # a tf.distribute.Strategy
    name: str
    devices: list[str]

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)


def split_cpu(count: int) -> None:
    """Expose the host CPU as `count` logical devices (before TensorFlow starts its runtime)."""
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    if count <= 1 or not cpus:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:  # already started (an earlier run in this process): fine if it matches
        have = len(tf.config.list_logical_devices("CPU"))
        if have != count:
            raise UserError(
                f"training.cpu_devices: this process already runs on {have} CPU device(s); "
                f"{count} must be set before its first run (use a launcher that starts a process per job)"
            ) from None


def make(training: DictConfig) -> Distribution:
    """The configured strategy; created before any model, as TensorFlow requires."""
    import tensorflow as tf

    name = training.strategy
    split_cpu(int(training.cpu_devices))
    if name == "default":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        devices = list(training.devices) if training.devices else None
        if devices is None and not tf.config.list_logical_devices("GPU"):
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        elif devices is not None:
            _check_devices(devices)
        try:
            strategy = tf.distribute.MirroredStrategy(devices=devices)
        except (ValueError, RuntimeError) as e:
            raise UserError(f"training.devices: {devices}: {e}") from None
    else:  # refused by config.validate_training before anything runs
        raise ValueError(f"unknown strategy {name!r}")
    distribution = Distribution(strategy, name, _devices(strategy))
    log.info("strategy %s: %d replica(s) on %s", name, distribution.replicas, ", ".join(distribution.devices))
    if name == "mirrored" and distribution.replicas == 1:
        log.warning(
            "strategy mirrored runs on one device: add GPUs, or set training.cpu_devices=N to split the CPU"
        )
    return distribution


def _check_devices(devices: list[str]) -> None:
    """Every named device must exist here (TensorFlow would otherwise quietly place work elsewhere)."""
    import tensorflow as tf

    def canonical(name: str) -> tuple[str, int]:
        spec = tf.DeviceSpec.from_string(name)
        return (spec.device_type or "").upper(), int(spec.device_index or 0)

    available = {canonical(d.name): d.name for d in tf.config.list_logical_devices()}
    for name in devices:
        try:
            known = canonical(name) in available
        except (ValueError, TypeError):
            known = False
        if not known:
            names = ", ".join(sorted(n.split("device:")[-1] for n in available.values()))
            raise UserError(f"training.devices: no device {name!r} here (available: {names})")


def _devices(strategy: tf.distribute.Strategy) -> list[str]:
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy has none to list
        devices = ()
    return [str(d).split("/")[-1].removeprefix("device:") for d in devices] or ["default device"]


@contextlib.contextmanager
def tensorflow_setting(cfg: DictConfig) -> Iterator:
    """The run's devices (chosen before anything else touches TensorFlow's), a precision that does not leak
    into what the process builds next, and a tracking server's refusals said in one line."""
    from src.tracking import access

    distribution = make(cfg.training)
    import keras

    previous = keras.mixed_precision.global_policy()
    try:
        with access.refusals(), distribution.strategy.scope():
            yield distribution
    finally:
        keras.mixed_precision.set_global_policy(previous)
