"""Backbone + top, with the input handling and the backbone's preprocessing inside the model.

The built model takes raw digits as MNIST has them: (N, 28, 28) or (N, 28, 28, 1), uint8 0-255 or float,
white on black. A consumer never needs to know which backbone is inside.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hydra.utils import instantiate

from src import UserError, config
from src.data import IMAGE_SHAPE, NUM_CLASSES

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import keras
    from omegaconf import DictConfig

log = logging.getLogger(__name__)


def simple_cnn(
    input_shape: tuple[int, int, int],
    weights: str | None = None,
    filters: Sequence[int] = (32, 64),
    kernel_sizes: int | Sequence[int] = 3,
    convs_per_block: int = 2,
    padding: str = "same",
    dropout: float = 0.25,
    name: str = "simple_cnn",
) -> keras.Model:
    """Blocks of convolutions, max-pooling and dropout: a from-scratch network called like a Keras
    application. Block i has `filters[i]` channels and kernels of `kernel_sizes[i]` (or one size for all).

    A weights file is loaded by `build_backbone`, as for every backbone.
    """
    if weights is not None:
        raise UserError(
            "backbone.weights: simple_cnn has no ImageNet weights (valid: null or a weights file)"
        )
    import keras
    from keras import layers

    sizes = [kernel_sizes] * len(filters) if isinstance(kernel_sizes, int) else list(kernel_sizes)
    if len(sizes) != len(filters):
        raise UserError(
            f"backbone.network.kernel_sizes: {len(sizes)} sizes for {len(filters)} blocks of filters"
        )
    inputs = keras.Input(input_shape)
    x = inputs
    for n, size in zip(filters, sizes, strict=True):
        for _ in range(convs_per_block):
            x = layers.Conv2D(n, size, padding=padding, activation="relu")(x)
        x = layers.MaxPooling2D()(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, x, name=name)


def build_backbone(cfg: DictConfig, input_size: int, strict: bool = False) -> tuple[Any, list[str]]:
    """The configured network with its weights and trainability, and any fallback taken."""
    fallbacks: list[str] = []
    weights = cfg.weights
    input_shape = (input_size, input_size, cfg.channels)
    path = config.weights_file(cfg)
    if path is not None:
        network = _network(cfg, input_shape, weights=None)
        try:
            network.load_weights(str(path))
        except Exception as e:
            raise UserError(f"backbone.weights: {path} does not fit {cfg.name}: {e}") from None
    elif weights == "imagenet":
        try:
            network = _network(cfg, input_shape, weights="imagenet")
        except Exception as e:
            if "URL fetch failure" not in str(e):
                raise
            message = f"ImageNet weights for {cfg.name} could not be downloaded and are not cached"
            if strict:
                raise UserError(f"backbone.weights: {message} (strict=true)") from None
            fallbacks.append(f"weights: {message}; the backbone starts from random initialisation")
            network = _network(cfg, input_shape, weights=None)
    else:
        network = _network(cfg, input_shape, weights=None)
    set_trainable(network, cfg.fine_tune, keep_batchnorm_statistics=cfg.freeze_batchnorm)
    return network, fallbacks


def _network(cfg: DictConfig, input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """Instantiate backbone.network, letting the user's own mistakes through as they are."""
    from hydra.errors import InstantiationException

    try:
        return instantiate(cfg.network, input_shape=input_shape, weights=weights)
    except InstantiationException as e:
        if isinstance(e.__cause__, UserError):
            raise e.__cause__ from None
        raise


def set_trainable(
    network: keras.Model, fine_tune: str | None, keep_batchnorm_statistics: bool = True
) -> None:
    """Freeze the network (None), unfreeze it ("all"), or unfreeze from a named layer on.

    When fine-tuning, BatchNormalization layers stay frozen unless `keep_batchnorm_statistics` is false:
    a frozen BatchNormalization layer runs in inference mode in Keras 3 (the moving mean and variance
    it learned on ImageNet normalise the inputs and are never updated), as the Keras transfer-learning
    guide advises, so small batches of digits do not overwrite the pretrained statistics.
    """
    if fine_tune is None:
        network.trainable = False
        return
    network.trainable = True
    if fine_tune != "all":
        names = [layer.name for layer in network.layers]
        if fine_tune not in names:
            raise UserError(
                f"backbone.fine_tune: {network.name} has no layer {fine_tune!r} "
                f"(valid: null, all, or a layer name such as {', '.join(names[-4:])})"
            )
        for layer in network.layers[: names.index(fine_tune)]:
            layer.trainable = False
    if keep_batchnorm_statistics:
        import keras

        for layer in leaf_layers(network):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def leaf_layers(model: keras.Model) -> Iterator[keras.Layer]:
    """Every layer of a model, the layers of nested models included, in order."""
    for layer in model.layers:
        yield from leaf_layers(layer) if hasattr(layer, "layers") else [layer]


@dataclass
class Network:
    """The classifier and its two halves, which share their layers.

    `features` maps raw digits to the backbone's output, `top` maps that to 10 probabilities, and
    `model` = top(features(digits)) is what gets saved. A frozen backbone's features never change while
    training, so the top can be trained on them directly (the feature cache). With a frozen backbone,
    `fast_features` and `fast_model` compute the same with fewer multiply-adds (src/models/frozen_forward.py);
    they share every weight with `features` and `model`.
    """

    model: Any  # keras.Model (Keras publishes no types)
    features: Any
    top: Any
    frozen: bool
    fallbacks: list[str]
    fast_features: Any = None
    fast_model: Any = None

    @property
    def forward_features(self) -> keras.Model:
        """The network that computes features where the backbone does not train."""
        return self.fast_features or self.features

    @property
    def trainee(self) -> keras.Model:
        """The model training and evaluation run: the fast one with a frozen backbone."""
        return self.fast_model or self.model


class WeightsMismatch(UserError):
    """Another model's weights that do not fit the network built (a fine-tune's starting point)."""


def build_model(cfg: DictConfig, strict: bool = False, weights: list | None = None) -> Network:
    """The whole classifier from raw 28x28 digits to 10 probabilities; with `weights` (another model's,
    in Keras's order), starting from them."""
    import keras
    from keras import layers

    size = int(cfg.input_size)
    backbone, fallbacks = build_backbone(cfg.backbone, size, strict=strict)
    inputs = keras.Input((*IMAGE_SHAPE, 1), name="digits")
    x = inputs
    if (size, size) != IMAGE_SHAPE:
        # training=False recorded on the node: Keras's image layers default to training=True, and a call
        # without `training` (an export, a plain model(x)) would carry that into the backbone's dropout
        x = layers.Resizing(size, size, name="resize")(x, training=False)
    if cfg.backbone.channels == 3:  # ImageNet's networks take colour pictures: three equal channels
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    for layer_cfg in cfg.backbone.preprocessing:
        x = instantiate(layer_cfg)(x)
    features = keras.Model(inputs, backbone(x), name="features")

    top_inputs = keras.Input(features.output.shape[1:], name="backbone_features")
    y = top_inputs
    mixed = keras.mixed_precision.global_policy().name.startswith("mixed")
    for index, layer_cfg in enumerate(cfg.top.layers):
        last = index == len(cfg.top.layers) - 1
        # under mixed precision the probabilities are still computed (and sum to 1) in float32
        y = instantiate(layer_cfg, **({"dtype": "float32"} if last and mixed else {}))(y)
    if y.shape[-1] != NUM_CLASSES or len(y.shape) != 2:
        raise UserError(
            f"top.layers: the top must end in {NUM_CLASSES} probabilities per digit; got {y.shape}"
        )
    top = keras.Model(top_inputs, y, name="top")
    model = keras.Model(inputs, top(features(inputs)), name=f"{cfg.backbone.name}_{cfg.top.name}")
    if weights is not None:  # before the frozen backbone's fast twin copies them
        set_weights(model, weights)
    network = Network(model, features, top, frozen=not backbone.trainable, fallbacks=fallbacks)
    if network.frozen:
        from src.models.frozen_forward import fast_clone

        fast_features, replaced = fast_clone(features)
        if replaced:
            log.info("frozen backbone: %s computed as matrix products", ", ".join(replaced))
            network.fast_features = fast_features
            fast_inputs = keras.Input((*IMAGE_SHAPE, 1), name="digits")
            network.fast_model = keras.Model(fast_inputs, top(fast_features(fast_inputs)), name=model.name)
    return network


def set_weights(model: keras.Model, weights: list) -> None:
    """Another model's weights into this one: refused (WeightsMismatch) unless they fit array by array."""
    shapes = [tuple(w.shape) for w in model.get_weights()]
    given = [tuple(getattr(w, "shape", ())) for w in weights]
    if shapes != given:
        where = next((i for i, (a, b) in enumerate(zip(shapes, given, strict=False)) if a != b), None)
        first = f"; array {where}: {given[where]} for {shapes[where]}" if where is not None else ""
        raise WeightsMismatch(
            f"its {len(given)} weight arrays do not fit this network's {len(shapes)}{first}"
        )
    model.set_weights(weights)


def set_precision(policy: str) -> None:
    """float32, mixed_bfloat16 (recent CPUs) or mixed_float16 (GPUs), for every layer built after."""
    import keras

    valid = ("float32", "mixed_bfloat16", "mixed_float16")
    if policy not in valid:
        raise UserError(f"training.precision: {policy!r} is not one of {', '.join(valid)}")
    keras.mixed_precision.set_global_policy(policy)


def weights_digest(network: keras.Model) -> str:
    """A fingerprint of a network's weights: equal digests, equal features."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for weight in network.weights:
        h.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return h.hexdigest()[:16]


def count_params(model: keras.Model) -> dict[str, int]:
    import numpy as np

    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return {"total_params": int(model.count_params()), "trainable_params": trainable}
