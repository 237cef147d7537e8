"""Calibrated probabilities: the temperature, its fold into the model, the calibration error."""

import numpy as np
import pytest

from src.models import calibration


def _overconfident(n=4000, seed=0):
    """Labels and probabilities of a classifier right 80% of the time that says 99%."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    predicted = np.where(rng.random(n) < 0.8, labels, (labels + rng.integers(1, 10, n)) % 10)
    logits = rng.normal(0, 1, (n, 10))
    logits[np.arange(n), predicted] += 8.0
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), labels


def test_a_fitted_temperature_cools_an_overconfident_model_without_changing_a_prediction():
    p, labels = _overconfident()
    before = calibration.expected_calibration_error(p, labels)
    assert before > 0.1  # it says ~99% and is right 80% of the time
    temperature = calibration.fit_temperature(p, labels)
    assert temperature > 1.5
    scaled = calibration.scale(p, temperature)
    assert (scaled.argmax(axis=1) == p.argmax(axis=1)).all()
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0, rtol=1e-9)
    assert calibration.expected_calibration_error(scaled, labels) < 0.5 * before
    # a calibrated model is left as it is
    assert calibration.fit_temperature(scaled, labels) == pytest.approx(1.0, abs=0.05)


def test_the_error_is_the_weighted_gap_between_confidence_and_accuracy():
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])  # 90%-sure bin: half right; 60%-sure bin: all right
    assert calibration.expected_calibration_error(p, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert calibration.reliability(p, labels) == [(0.6, 1.0, 2), (0.9, 0.5, 2)]


def test_folding_the_temperature_into_the_softmax_layer_scales_the_model_s_probabilities():
    import keras

    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(8, activation="relu")(inputs))
    top = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(0, 3, (32, 6)).astype(np.float32)
    p = top.predict(x, verbose=0)
    layer = calibration.softmax_layer(top)
    assert layer is top.layers[-1]
    calibration.fold(layer, 2.5)
    np.testing.assert_allclose(top.predict(x, verbose=0), calibration.scale(p, 2.5), atol=1e-5)
    linear = keras.Model(inputs, keras.layers.Dense(10)(inputs))
    assert calibration.softmax_layer(linear) is None  # nothing to fold into: calibration is skipped
