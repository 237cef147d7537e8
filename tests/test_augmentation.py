"""The augmentation presets: augmentation=handwriting builds, and its stroke-width layer does what it says."""

import numpy as np
import pytest

from src.data import SAMPLE_PATH


def test_stroke_width_thickens_thins_or_keeps_each_digit_and_nothing_at_inference():
    from src.training.augmentation import RandomStrokeWidth

    x = np.load(SAMPLE_PATH)["x_train"][:64][..., None].astype("float32")
    ink = x.sum(axis=(1, 2, 3))
    thicker = np.asarray(RandomStrokeWidth(thicker=1.0, thinner=0.0, seed=1)(x, training=True)).sum(
        axis=(1, 2, 3)
    )
    thinner = np.asarray(RandomStrokeWidth(thicker=0.0, thinner=1.0, seed=1)(x, training=True)).sum(
        axis=(1, 2, 3)
    )
    assert (thicker > 1.3 * ink).all() and (thinner < 0.9 * ink).all() and (thinner > 0.3 * ink).all()
    mixed = RandomStrokeWidth(seed=3)
    assert np.array_equal(np.asarray(mixed(x, training=False)), x)
    out = np.asarray(mixed(x, training=True)).sum(axis=(1, 2, 3))
    kinds = np.sign(np.round((out - ink) / ink, 2))
    assert {-1, 0, 1} <= set(kinds.tolist())  # some of each, one choice per digit
    with pytest.raises(ValueError, match="thicker"):
        RandomStrokeWidth(thicker=0.8, thinner=0.5)


def test_augmentation_handwriting_composes_and_changes_digits():
    from src.config import compose
    from src.training.augmentation import augmentation

    cfg = compose(["augmentation=handwriting"])
    layer = augmentation(cfg)
    x = np.load(SAMPLE_PATH)["x_train"][:32][..., None].astype("float32")
    y = np.asarray(layer(x, training=True))
    assert y.shape == x.shape and np.isfinite(y).all() and not np.allclose(y, x)
    assert y.min() >= 0 and y.max() <= 255
