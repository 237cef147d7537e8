"""The frozen-backbone feature cache: when it applies, what it is keyed by, and that it trains the same."""

import mlflow
import numpy as np
import pytest

from src import data, features, model
from src.train import train
from tests.conftest import TINY

NO_AUGMENTATION = ["augmentation=none", "backbone.weights=null"]


def test_the_cache_is_used_only_where_it_is_exact(compose_cfg):
    frozen = model.build_model(compose_cfg(*NO_AUGMENTATION))
    assert features.unusable_because(compose_cfg(*NO_AUGMENTATION), frozen) is None
    assert "augmentation=rotation" in features.unusable_because(compose_cfg("backbone.weights=null"), frozen)
    off = compose_cfg(*NO_AUGMENTATION, "training.feature_cache=false")
    assert features.unusable_because(off, frozen) == "training.feature_cache=false"
    tuned = compose_cfg(*NO_AUGMENTATION, "backbone.fine_tune=block5_conv1")
    assert "fine_tune=block5_conv1" in features.unusable_because(tuned, model.build_model(tuned))


def test_features_are_computed_once_then_loaded(compose_cfg, tmp_path):
    cfg = compose_cfg(*NO_AUGMENTATION, "data=mnist_sample", "data.train_limit=200", "data.test_limit=50")
    network = model.build_model(cfg)
    digits = data.load_digits(cfg.data)
    first, source, seconds, test_seconds = features.backbone_features(network, digits, tmp_path)
    assert source == "computed" and first["train"].shape == (180, 1, 1, 512)
    assert 0 < test_seconds < seconds
    again, source, _, test_seconds = features.backbone_features(network, digits, tmp_path)
    assert source == "hit" and test_seconds is None
    for split in features.SPLITS:
        np.testing.assert_array_equal(first[split], again[split])
    # computed by the backbone's fast twin: the same features as Keras's own layers give
    expected = network.features.predict(digits.x_test[..., None], verbose=0)
    np.testing.assert_allclose(first["test"], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_the_key_changes_with_what_changes_the_features(compose_cfg):
    cfg = compose_cfg(*NO_AUGMENTATION, "data=mnist_sample", "data.train_limit=100", "data.test_limit=20")
    network = model.build_model(cfg)
    digits = data.load_digits(cfg.data)
    key = features.cache_key(network, digits)
    assert features.cache_key(network, digits) == key
    other_data = data.load_digits(
        compose_cfg(*NO_AUGMENTATION, "data=mnist_sample", "data.train_limit=101").data
    )
    assert features.cache_key(network, other_data) != key
    other_weights = model.build_model(
        compose_cfg(*NO_AUGMENTATION, "training.seed=7")
    )  # same seed? no: new draw
    assert features.cache_key(other_weights, digits) != key
    other_size = model.build_model(compose_cfg(*NO_AUGMENTATION, "input_size=48"))
    assert features.cache_key(other_size, digits) != key
    same_backbone_other_top = model.build_model(compose_cfg(*NO_AUGMENTATION, "top=gap"))
    same_backbone_other_top.features.set_weights(network.features.get_weights())
    assert features.cache_key(same_backbone_other_top, digits) == key


@pytest.mark.slow
def test_cached_training_matches_uncached_training(store, compose_cfg, tmp_path):
    common = [
        *TINY,
        *NO_AUGMENTATION,
        "training.epochs=3",
        f"training.feature_cache_dir={tmp_path / 'cache'}",
    ]
    cached = train(compose_cfg(*common, "tracking.run_name=cached"))
    again = train(compose_cfg(*common, "tracking.run_name=cached-again"))
    plain = train(compose_cfg(*common, "training.feature_cache=false", "tracking.run_name=plain"))
    runs = {r.info.run_name: r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}
    assert runs["cached"].data.tags["feature_cache"] == "computed"
    assert runs["cached-again"].data.tags["feature_cache"] == "hit"
    assert runs["plain"].data.tags["feature_cache"] == "off: training.feature_cache=false"
    assert cached["test_accuracy"] == pytest.approx(plain["test_accuracy"], abs=0.02)
    assert cached["test_accuracy"] == pytest.approx(again["test_accuracy"], abs=1e-9)
    client = mlflow.MlflowClient()
    losses = {
        name: [m.value for m in client.get_metric_history(runs[name].info.run_id, "loss")]
        for name in ("cached", "plain")
    }
    np.testing.assert_allclose(losses["cached"], losses["plain"], rtol=0.02)

    # the registered model of a cached run is the whole model: it reads raw digits to the same score
    version = runs["cached"].data.tags["registered_model"].split("/")[1]
    loaded = mlflow.pyfunc.load_model(f"models:/handwritten-digits/{version}")
    digits = data.load_digits(compose_cfg(*common).data)
    accuracy = (np.asarray(loaded.predict(digits.x_test)).argmax(axis=1) == digits.y_test).mean()
    assert accuracy == pytest.approx(cached["test_accuracy"], abs=1e-9)
