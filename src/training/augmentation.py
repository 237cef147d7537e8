"""`conf/augmentation/`: the configured layers as one Keras layer, and the layers Keras does not have (named
by `_target_`)."""

from __future__ import annotations

from typing import Any

import keras
from omegaconf import DictConfig


class RandomStrokeWidth(keras.layers.Layer):
    """Thicker or thinner strokes, one choice per digit: a 3x3 grey-scale dilation (the brightest
    neighbour: a thicker pen), half an erosion (a thinner one: a full erosion would wipe out MNIST's
    2-pixel strokes), or the digit as it is. Takes (batch, height, width, 1), white ink on black."""

    def __init__(
        self, thicker: float = 0.25, thinner: float = 0.2, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if thicker < 0 or thinner < 0 or thicker + thinner > 1:
            raise ValueError(f"thicker ({thicker}) and thinner ({thinner}): shares between 0 and 1 in all")
        self.thicker, self.thinner, self.seed = thicker, thinner, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images: Any, training: bool = True) -> Any:
        if not training:
            return images
        ops = keras.ops
        dilated = ops.max_pool(images, 3, strides=1, padding="same")
        eroded = -ops.max_pool(-images, 3, strides=1, padding="same")
        draw = keras.random.uniform((ops.shape(images)[0], 1, 1, 1), seed=self.seed_generator)
        thinner = 0.5 * (images + eroded)
        return ops.where(
            draw < self.thicker, dilated, ops.where(draw < self.thicker + self.thinner, thinner, images)
        )

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "thicker": self.thicker, "thinner": self.thinner, "seed": self.seed}


def augmentation(cfg: DictConfig) -> keras.Sequential | None:
    """The configured augmentation layers as one Keras layer (None: no augmentation)."""
    from hydra.utils import instantiate

    layers = [instantiate(layer) for layer in cfg.augmentation.layers]
    return keras.Sequential(layers, name="augmentation") if layers else None
