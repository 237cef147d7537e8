"""The composed config: groups, defaults that reproduce the study, and fast failures on bad input."""

import pytest
from hydra.errors import ConfigCompositionException

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
