"""Learning-rate schedules a config can name by _target_, built from Keras's own (so a saved model's
optimizer loads anywhere without this project's code)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def one_cycle(
    peak: float, total_steps: int, warmup: float = 0.25, start: float = 0.04, end: float = 1e-3
) -> keras.optimizers.schedules.LearningRateSchedule:
    """The one-cycle policy (Smith & Topin, "Super-Convergence", 2017): the rate climbs linearly from
    start x peak to peak over the first `warmup` fraction of the steps, then falls along a cosine to
    end x peak. `total_steps` is training.epochs x steps per epoch: `auto` in a config, filled in when the
    data and batch size are known."""
    import keras

    warmup_steps = max(1, round(warmup * total_steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=start * peak,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=end,
        warmup_target=peak,
        warmup_steps=warmup_steps,
    )
