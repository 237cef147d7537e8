"""The composed config: groups, defaults that reproduce the study, and fast failures on bad input."""

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from tests.conftest import run_cli


def test_defaults_reproduce_the_original_study(compose_cfg):
    cfg = compose_cfg()
    assert cfg.backbone.name == "vgg16" and cfg.backbone.weights == "imagenet"
    assert cfg.backbone.fine_tune is None
    assert [layer._target_.split(".")[-1] for layer in cfg.top.layers] == ["Flatten", "Dense", "Dense"]
    assert cfg.top.layers[1].units == 1000 and cfg.top.layers[2].units == 10
    assert cfg.augmentation.layers[0].factor * 360 == pytest.approx(10)
    assert cfg.training.epochs == 25 and cfg.training.batch_size == 32
    assert cfg.training.optimizer._target_ == "keras.optimizers.Adam"
    assert cfg.training.callbacks.early_stopping.patience == 5
    assert cfg.input_size == 32
    assert cfg.tracking.registered_model == "handwritten-digits"


@pytest.mark.parametrize(
    "group,choices",
    [
        ("backbone", ["vgg16", "vgg19", "resnet50", "simple_cnn"]),
        ("top", ["seed", "gap"]),
        ("augmentation", ["rotation", "none", "rich"]),
        ("data", ["mnist", "mnist_sample"]),
    ],
)
def test_every_choice_composes(compose_cfg, group, choices):
    for choice in choices:
        cfg = compose_cfg(f"{group}={choice}")
        assert cfg[group].name == choice


def test_tracking_uri_follows_the_environment(compose_cfg, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert compose_cfg().tracking.uri is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert compose_cfg().tracking.uri == "sqlite:///elsewhere.db"


def test_unknown_key_is_refused(compose_cfg):
    with pytest.raises(ConfigCompositionException, match="epochz"):
        compose_cfg("training.epochz=3")


def test_unknown_backbone_fails_naming_the_valid_ones():
    result = run_cli("src.train", "backbone=resnet18", timeout=60)
    assert result.returncode != 0
    message = result.stderr
    assert "resnet18" in message
    for name in ("vgg16", "vgg19", "resnet50", "simple_cnn"):
        assert name in message
    assert "Traceback" not in message


def test_the_fast_baseline_preset_changes_what_it_says_and_keeps_the_data_overrides(compose_cfg):
    cfg = compose_cfg(
        "+experiment=fast_baseline", "data=mnist", "data.path=/somewhere/mnist.npz", "training.seed=3"
    )
    assert cfg.backbone.name == "simple_cnn" and cfg.backbone.channels == 1 and cfg.input_size == 28
    assert cfg.augmentation.layers == [] and cfg.training.callbacks.early_stopping is None
    assert cfg.training.optimizer.learning_rate.total_steps == "auto"
    assert cfg.data.name == "mnist" and cfg.data.path == "/somewhere/mnist.npz" and cfg.training.seed == 3


def test_a_schedule_s_length_is_filled_in_from_the_run(compose_cfg):
    import keras

    from src.training.fit import optimizer

    cfg = compose_cfg("+experiment=fast_baseline")
    adam = optimizer(cfg.training.optimizer, total_steps=400)
    schedule = (
        adam.learning_rate if not callable(getattr(adam, "_learning_rate", None)) else adam._learning_rate
    )
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    rates = [float(schedule(step)) for step in (0, 100, 399)]
    assert rates[0] == pytest.approx(0.0004) and rates[1] == pytest.approx(0.01)  # up over the first quarter
    assert rates[2] < 1e-4  # and down by the end
    assert adam.beta_1 == 0.7 and adam.beta_2 == 0.9


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["backbone.channels=1"], "vgg16 takes 3 channels"),
        (["input_size=28"], "input_size: 28 is not a whole number >= 32"),
        (["+experiment=fast_baseline", "input_size=4"], "input_size: 4 is not a whole number >= 8"),
        (["training.echo_views=-1"], "training.echo_views"),
        (["training.digit_score.keep=1.5"], "training.digit_score.keep"),
        (["training.digit_score.sample=-1"], "training.digit_score.sample"),
        (["training.digit_score.hidden=-1"], "training.digit_score.hidden"),
        (["training.digit_score.keep_cut=0.99"], "keep_cut: 0.99 is not a number > 0.5 and < 0.98"),
        (
            ["training.non_digits.share=1.5"],
            "training.non_digits.share: 1.5 is not a number >= 0.0 and < 1.0",
        ),
        (["training.non_digits.as_read=-0.1"], "training.non_digits.as_read"),
        (["training.precision=fast"], "auto, float32"),
        (["backbone.freeze_batchnorm=maybe"], "backbone.freeze_batchnorm"),
        (["tracking.champion.metric=test_accuracy"], "the test set never chooses"),
        (["tracking.champion.min_delta=-0.1"], "tracking.champion.min_delta"),
    ],
)
def test_new_keys_are_checked_before_tensorflow(compose_cfg, overrides, message):
    from src import UserError, config

    with pytest.raises(UserError, match=message):
        config.validate_training(compose_cfg(*overrides))


def test_training_s_groups_compose_the_keys_training_always_had(compose_cfg):
    training = compose_cfg().training
    assert (training.optimizer._target_, training.optimizer.learning_rate) == ("keras.optimizers.Adam", 0.001)
    assert (training.strategy, training.devices, training.cpu_devices) == ("default", None, 1)
    assert (training.feature_cache, training.echo_views, training.checkpoints) == ("auto", 4, True)
    mirrored = compose_cfg("training/distribute=mirrored").training
    assert (mirrored.strategy, mirrored.cpu_devices) == ("mirrored", 2)
    assert compose_cfg("training/cache=exact").training.feature_cache is False
    sgd = compose_cfg("training/optimizer=sgd", "training.optimizer.learning_rate=0.1").training.optimizer
    assert (sgd._target_, sgd.learning_rate, sgd.momentum) == ("keras.optimizers.SGD", 0.1, 0.9)
    # the keys are overridden by their old names, the group's choice first
    keyed = compose_cfg(
        "training/distribute=mirrored", "training.cpu_devices=4", "training.feature_cache=false"
    )
    assert (keyed.training.cpu_devices, keyed.training.feature_cache) == (4, False)


@pytest.mark.parametrize("name", ["predict", "draw", "export"])
def test_a_command_s_defaults_live_in_its_yaml_alone(name):
    """The commands' schemas hold types only: every value a command composes comes from its YAML."""
    import dataclasses

    from omegaconf import MISSING

    from src import config
    from src.reading.reader import SURE

    schema = {"predict": config.PredictConfig, "draw": config.DrawConfig, "export": config.ExportConfig}[name]
    assert all(field.default is MISSING for field in dataclasses.fields(schema))
    config.register_schemas()
    cfg = config.compose([], f"commands/{name}")
    assert set(cfg) >= {field.name for field in dataclasses.fields(schema)}
    if "sure" in cfg:  # the reader's own threshold, for a reader built without a command's config
        assert cfg.sure == SURE


def test_the_training_schema_names_each_key_it_checks_once(compose_cfg):
    from src import config, schema

    keys = [rule.key for rule in config.TRAINING_SCHEMA if not isinstance(rule, schema.Checked)]
    assert len(keys) == len(set(keys))
    composed = [compose_cfg(), compose_cfg("data=folder")]
    for key in keys:  # every key the schema checks is one conf/ composes (and gives its default)
        assert any(OmegaConf.select(cfg, key, default="absent") != "absent" for cfg in composed), key
