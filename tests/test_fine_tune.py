"""training.init_from: a training that starts from a registered model's weights and network, recorded
so that src.rerun starts from the same version again; and the starts it refuses."""

import mlflow
import numpy as np
import pytest

from src import UserError
from src.models import networks
from src.train import train
from tests.conftest import TINY, run_cli
from tests.test_own_data import write_digits

FROZEN_LR = ("training.optimizer.learning_rate=1e-12", "training.calibrate=false")


def _source(compose_cfg):
    """A small CNN of its own filters, registered as version 1 (the model a fine-tune starts from)."""
    train(
        compose_cfg(
            "+experiment=fast_baseline", *TINY, "training.precision=float32",
            "backbone.network.filters=[8,16]", "top.layers.1.units=32",
        )
    )  # fmt: skip
    return mlflow.search_runs(search_all_experiments=True, output_format="list")[0]


@pytest.mark.slow
def test_a_fine_tune_starts_from_the_models_weights_and_network_and_records_them(
    store, compose_cfg, tmp_path
):
    source = _source(compose_cfg)
    write_digits(tmp_path / "mine", 200)
    # the default network (VGG16) in the config: the model's is taken from its run
    train(
        compose_cfg(
            "data=folder", f"data.path={tmp_path / 'mine'}",
            "training.init_from=models:/handwritten-digits@champion", "training.epochs=1",
            "training.verbose=0", "training.precision=float32", "tracking.reader_model=null",
            "training.digit_score.sample=0", *FROZEN_LR,
        )
    )  # fmt: skip
    runs = mlflow.search_runs(search_all_experiments=True, order_by=["start_time ASC"], output_format="list")
    tuned = runs[1]
    params, tags = tuned.data.params, tuned.data.tags
    assert params["training.init_from"] == "models:/handwritten-digits/1"  # the alias, pinned to its version
    assert tags["init_from"] == "models:/handwritten-digits@champion"
    assert tags["init_from.run_id"] == source.info.run_id
    assert params["backbone.name"] == "simple_cnn" and params["backbone.network.filters.0"] == "8"
    assert params["top.layers.1.units"] == "32" and params["input_size"] == "28"
    assert tags["registered_model"] == "handwritten-digits/2"
    # a learning rate of 1e-12: the weights are the source's
    before = mlflow.keras.load_model("models:/handwritten-digits/1").get_weights()
    after = mlflow.keras.load_model("models:/handwritten-digits/2").get_weights()
    assert len(before) == len(after)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_a_fine_tune_is_run_again_from_the_same_version(store, compose_cfg, tmp_path):
    _source(compose_cfg)
    write_digits(tmp_path / "mine", 200)
    common = (
        "+experiment=fine_tune_own", f"data.path={tmp_path / 'mine'}", "data.mix_mnist=0.5",
        f"data.mnist_path={tmp_path / 'none.npz'}", "training.epochs=1", "training.verbose=0",
        "training.precision=float32", "tracking.reader_model=null", "training.digit_score.sample=0",
    )  # fmt: skip
    from src.data import SAMPLE_PATH

    common = tuple(o.replace(str(tmp_path / "none.npz"), str(SAMPLE_PATH)) for o in common)
    result = run_cli("src.train", *common, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    tuned = mlflow.search_runs(
        search_all_experiments=True, order_by=["start_time DESC"], output_format="list"
    )[0]
    assert tuned.data.params["training.init_from"] == "models:/handwritten-digits/1"
    # version 2 is the champion now (or not): the re-run starts from version 1 again, as the run did
    again = run_cli("src.rerun", f"run_id={tuned.info.run_id}", f"hydra.run.dir={tmp_path / 'again'}")
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = mlflow.search_runs(
        search_all_experiments=True, order_by=["start_time DESC"], output_format="list"
    )[0]
    assert rerun.data.tags["rerun_of"] == tuned.info.run_id
    assert rerun.data.params["training.init_from"] == "models:/handwritten-digits/1"
    assert rerun.data.tags["data.digest"] == tuned.data.tags["data.digest"]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["training.init_from=models:/nobody/1"], "training.init_from: no model at models:/nobody/1"),
        (["training.init_from=models:/handwritten-digits/1", "backbone=vgg16"], "another backbone"),
        (["training.init_from=models:/handwritten-digits/1", "input_size=32"], "another input_size"),
    ],
)
def test_a_missing_model_or_another_network_is_refused_in_one_line(digit_model, tmp_path, overrides, message):
    write_digits(tmp_path / "mine", 40)
    mlflow.set_tracking_uri(digit_model["uri"])
    before = {r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}
    result = run_cli(
        "src.train", "data=folder", f"data.path={tmp_path / 'mine'}", *overrides,
        f"hydra.run.dir={tmp_path / 'run'}", env={"MLFLOW_TRACKING_URI": digit_model["uri"]},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    mlflow.set_tracking_uri(digit_model["uri"])
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    # nothing logged: the store holds the runs it held (the fixture's, and what other tests of this
    # session logged to it), none of them a fine-tune
    assert {r.info.run_id for r in runs} == before
    assert all(r.data.params.get("training.init_from") in (None, "None") for r in runs)


def test_weights_that_do_not_fit_the_network_are_refused(compose_cfg):
    cfg = compose_cfg("+experiment=fast_baseline")
    small = networks.build_model(compose_cfg("+experiment=fast_baseline", "backbone.network.filters=[8,16]"))
    weights = small.model.get_weights()
    with pytest.raises(UserError, match=r"weight arrays do not fit this network's .*array 0: \(5, 5, 1, 8\)"):
        networks.build_model(cfg, weights=weights)
    assert issubclass(networks.WeightsMismatch, UserError)


def test_the_documented_commands_compose(compose_cfg):
    from hydra import compose, initialize_config_dir

    from src import config
    from tests.conftest import CONF

    cfg = compose_cfg("+experiment=fine_tune_own", "data.path=experiments/corrections")
    config.validate_training(cfg)
    assert cfg.data.name == "folder" and cfg.data.mix_mnist == 0.9 and cfg.augmentation.name == "handwriting"
    assert cfg.training.init_from == "models:/handwritten-digits@champion" and cfg.training.epochs == 30
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        evaluation = compose(
            config_name="evaluate", overrides=["data=folder", "data.path=DIR", "model=models:/m/1"]
        )
    assert evaluation.training.model_uri == "models:/m/1" and evaluation.data.name == "folder"
    assert not evaluation.training.enabled
