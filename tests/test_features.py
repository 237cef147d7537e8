"""The frozen-backbone feature cache and data echoing: when they apply, what they are keyed by, and that
they train the same (cached) or draw one augmented view per digit each epoch (echoed)."""

import mlflow
import numpy as np
import pytest

from src import data
from src.models import networks
from src.train import train
from src.training import features
from tests.conftest import TINY

NO_AUGMENTATION = ["augmentation=none", "backbone.weights=null"]


def test_each_route_is_taken_only_where_it_is_valid(compose_cfg):
    frozen = networks.build_model(compose_cfg(*NO_AUGMENTATION))
    assert features.route(compose_cfg(*NO_AUGMENTATION), frozen)[0] == "cached"
    # the default study (frozen, rotation): echoed features of 4 augmented views
    kind, why = features.route(compose_cfg("backbone.weights=null"), frozen)
    assert kind == "echoed" and "4 augmented view(s)" in why
    # as few epochs as views: the backbone would run as often, the exact training costs no more
    kind, why = features.route(compose_cfg("backbone.weights=null", "training.epochs=4"), frozen)
    assert kind == "exact" and "echoing saves nothing" in why
    kind, why = features.route(compose_cfg("backbone.weights=null", "training.echo_views=0"), frozen)
    assert kind == "exact" and "augmentation=rotation" in why
    for extra in (
        [],
        NO_AUGMENTATION,
    ):  # the exact training is one override away, with or without augmentation
        off = compose_cfg("backbone.weights=null", *extra, "training.feature_cache=false")
        assert features.route(off, frozen) == ("exact", "training.feature_cache=false")
    # a backbone that trains never uses cached or echoed features
    for extra in ([], NO_AUGMENTATION):
        tuned = compose_cfg("backbone.weights=null", *extra, "backbone.fine_tune=block5_conv1")
        kind, why = features.route(tuned, networks.build_model(tuned))
        assert kind == "exact" and "fine_tune=block5_conv1" in why


def test_echoed_features_are_of_augmented_views_and_cached(compose_cfg, tmp_path):
    from src.training.augmentation import augmentation

    cfg = compose_cfg(
        "backbone.weights=null", "data=mnist_sample", "data.train_limit=60", "data.test_limit=20"
    )
    network = networks.build_model(cfg)
    digits = data.load_digits(cfg.data)
    echo = {"views": 3, "seed": 42}
    computed, source, _, _ = features.backbone_features(
        network, digits, tmp_path, augment=augmentation(cfg), views=3, echo=echo
    )
    assert source == "computed"
    assert computed["train"].shape == (3, 54, 1, 1, 512) and computed["train"].dtype == np.float16
    plain = network.features.predict(digits.x_train[..., None], verbose=0).astype(np.float16)
    for view in range(3):  # each view is of rotated digits: not the plain features, not the other views
        assert not np.allclose(computed["train"][view], plain, rtol=1e-2, atol=1e-2)
    assert not np.allclose(computed["train"][0], computed["train"][1], rtol=1e-2, atol=1e-2)
    # validation and test digits are not augmented
    expected = network.features.predict(digits.x_test[..., None], verbose=0)
    np.testing.assert_allclose(computed["test"], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    again, source, _, _ = features.backbone_features(
        network, digits, tmp_path, augment=augmentation(cfg), views=3, echo=echo
    )
    assert source == "hit"
    np.testing.assert_array_equal(again["train"], computed["train"])
    # other views, seed or augmentation: other features, another file
    assert features.cache_key(network, digits, {**echo, "views": 2}) != features.cache_key(
        network, digits, echo
    )
    assert features.cache_key(network, digits, echo) != features.cache_key(network, digits)


def test_each_epoch_draws_one_view_of_every_digit():
    views, digits = 3, 10
    # the feature of view k of digit i is (i, k): what comes out says which digit and which view
    stored = np.stack([np.stack([np.full(digits, k), np.arange(digits)], axis=1) for k in range(views)])
    stored = stored.astype(np.float16)[:, :, None, :]  # (views, digits, 1, 2)
    labels = np.arange(digits) % 10 + 100

    def epochs(seed, count=4):
        dataset = features.echo_dataset(stored, labels, batch_size=4, seed=seed)
        assert int(dataset.cardinality()) == 3
        drawn = []
        for _ in range(count):
            rows, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
            rows, ys = np.concatenate(rows)[:, 0, :], np.concatenate(ys)
            assert sorted(rows[:, 1]) == list(range(digits))  # every digit once per epoch
            np.testing.assert_array_equal(ys, labels[rows[:, 1].astype(int)])  # with its own label
            drawn.append(rows)
        return drawn

    first = epochs(seed=1)
    orders = {tuple(rows[:, 1]) for rows in first}
    picks = [rows[np.argsort(rows[:, 1]), 0] for rows in first]
    assert len(orders) > 1  # a new order each epoch
    assert len({tuple(p) for p in picks}) > 1 and set(np.concatenate(picks)) == {0, 1, 2}  # views vary
    for ours, again in zip(first, epochs(seed=1), strict=True):  # seeded: the same draws again
        np.testing.assert_array_equal(ours, again)


def test_features_are_computed_once_then_loaded(compose_cfg, tmp_path):
    cfg = compose_cfg(*NO_AUGMENTATION, "data=mnist_sample", "data.train_limit=200", "data.test_limit=50")
    network = networks.build_model(cfg)
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
    network = networks.build_model(cfg)
    digits = data.load_digits(cfg.data)
    key = features.cache_key(network, digits)
    assert features.cache_key(network, digits) == key
    other_data = data.load_digits(
        compose_cfg(*NO_AUGMENTATION, "data=mnist_sample", "data.train_limit=101").data
    )
    assert features.cache_key(network, other_data) != key
    other_weights = networks.build_model(
        compose_cfg(*NO_AUGMENTATION, "training.seed=7")
    )  # same seed? no: new draw
    assert features.cache_key(other_weights, digits) != key
    other_size = networks.build_model(compose_cfg(*NO_AUGMENTATION, "input_size=48"))
    assert features.cache_key(other_size, digits) != key
    same_backbone_other_top = networks.build_model(compose_cfg(*NO_AUGMENTATION, "top=gap"))
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
