"""A run again from its record alone (python -m src.rerun), and two runs compared (src.compare --runs)."""

import shutil

import mlflow
import numpy as np
import pytest
from omegaconf import OmegaConf

from src import UserError, compare, rerun
from src.data import SAMPLE_PATH
from src.tracking import rebuild
from tests.conftest import new_store, run_cli, use_store

# a tiny deterministic run on a copy of the sample read as full MNIST (data.path), so the data can change
TRAIN = [
    "backbone=simple_cnn",
    "data.train_limit=256",
    "data.test_limit=128",
    "training.epochs=1",
    "training.verbose=0",
    "training.deterministic=true",  # augmentation stays on (rotation): its pipeline is seeded too
]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One run made by the command line, in its own store, with its Hydra output directory deleted."""
    root = tmp_path_factory.mktemp("rerun")
    uri = new_store(root)
    data = root / "mnist.npz"
    shutil.copy(SAMPLE_PATH, data)
    out = root / "hydra-output"
    result = run_cli(
        "src.train", *TRAIN, f"data.path={data}", f"hydra.run.dir={out}", env={"MLFLOW_TRACKING_URI": uri}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / ".hydra" / "overrides.yaml").is_file()
    shutil.rmtree(out)  # a re-run needs nothing but the store
    use_store(uri)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return {"uri": uri, "root": root, "data": data, "run": run}


def _config(run_id: str) -> dict:
    text = mlflow.artifacts.load_text(f"runs:/{run_id}/config/config.yaml")
    config = OmegaConf.to_container(OmegaConf.create(text))
    config["tracking"].pop("tags")
    return config


@pytest.mark.slow
def test_a_run_is_run_again_from_its_id_with_the_same_config_and_accuracy(recorded, capsys):
    original = recorded["run"]
    again_dir = recorded["root"] / "again"
    result = run_cli(
        "src.rerun", f"run_id={original.info.run_id}", "tracking.run_name=again",
        f"hydra.run.dir={again_dir}", env={"MLFLOW_TRACKING_URI": recorded["uri"]},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (again_dir / ".hydra" / "overrides.yaml").is_file()  # Hydra's own override applied

    use_store(recorded["uri"])
    runs = mlflow.search_runs(search_all_experiments=True, order_by=["start_time ASC"], output_format="list")
    assert len(runs) == 2
    new = runs[1]
    assert new.info.status == "FINISHED"
    assert new.data.tags["rerun_of"] == original.info.run_id
    assert new.info.experiment_id == original.info.experiment_id
    assert new.info.run_name == "again"  # an override on top

    expected = _config(original.info.run_id)
    expected["tracking"]["run_name"] = "again"
    # training.precision=auto: the re-run computes in what the run used, whatever this machine would choose
    assert expected["training"]["precision"] == "auto"
    expected["training"]["precision"] = original.data.tags["precision"]
    assert _config(new.info.run_id) == expected
    assert new.data.tags["precision"] == original.data.tags["precision"]
    assert new.data.tags["data.digest"] == original.data.tags["data.digest"]
    assert new.data.metrics["test_accuracy"] == original.data.metrics["test_accuracy"]
    assert new.data.metrics["test_loss"] == original.data.metrics["test_loss"]  # the same numbers

    # what a re-run needs and a reader wants
    tags = new.data.tags
    for key in ("python", "tensorflow", "keras", "cpu", "cpu_isa", "gpus", "intra_op_threads", "cpus_usable"):
        assert tags[f"env.{key}"], key
    assert tags["env.keras"] == __import__("keras").__version__
    requirements = mlflow.artifacts.load_text(f"runs:/{new.info.run_id}/environment/requirements.txt")
    assert f"tensorflow=={tags['env.tensorflow']}" in requirements.splitlines()

    # what changed between the two: the run name only; the metrics side by side
    assert compare.main(["--runs", original.info.run_id, new.info.run_id]) == 0
    table = capsys.readouterr().out
    assert "## Config: 2 keys differ" in table and "tracking.run_name" in table
    assert "training.precision" in table
    line = next(row for row in table.splitlines() if row.startswith("| test_accuracy "))
    accuracy = f"{original.data.metrics['test_accuracy']:.4f}"
    assert line.count(accuracy) == 2


@pytest.mark.slow
def test_a_rerun_computes_in_the_precision_the_run_used(recorded):
    run_id = recorded["run"].info.run_id
    client = mlflow.MlflowClient()
    used = recorded["run"].data.tags["precision"]
    try:  # as if auto had chosen bfloat16 on the run's machine, whatever it chooses on this one
        client.set_tag(run_id, "precision", "mixed_bfloat16")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", recorded["uri"])
            arguments = rerun.prepare([f"run_id={run_id}"])
            assert "training.precision=mixed_bfloat16" in arguments
            given = rerun.prepare([f"run_id={run_id}", "training.precision=float32"])
            assert "training.precision=float32" in given and "training.precision=mixed_bfloat16" not in given
    finally:
        client.set_tag(run_id, "precision", used)


@pytest.mark.slow
def test_a_changed_dataset_is_refused(recorded):
    original = recorded["run"]
    data = recorded["data"]
    kept = data.read_bytes()
    use_store(recorded["uri"])
    before = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    with np.load(SAMPLE_PATH) as sample:
        arrays = dict(sample)
    arrays["x_train"][0] = 255 - arrays["x_train"][0]  # one digit changed
    try:
        np.savez(data, **arrays)
        result = run_cli(
            "src.rerun", f"run_id={original.info.run_id}", env={"MLFLOW_TRACKING_URI": recorded["uri"]}
        )
    finally:
        data.write_bytes(kept)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: the data differs from the run's")
    assert original.data.tags["data.digest"] in error and "allow_other_data=true" in error
    assert "Traceback" not in result.stderr
    use_store(recorded["uri"])
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == before  # no run


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "give run_id=<id> or model=<models:/ URI>"),
        (["run_id=abc", "model=models:/m@champion"], "one of them"),
        (["model=champion"], "not a models:/"),
        (["run_id=abc", "same_code=yes"], "same_code: 'yes' is not true or false"),
        (["run_id=abc", "-m"], "a re-run is one run"),
    ],
)
def test_bad_arguments_fail_in_one_line(args, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rebuild.parse(args)


def test_an_unknown_run_fails_before_tensorflow(tmp_path):
    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"  # no store there yet
    env = {"PYTHONPROFILEIMPORTTIME": "1", "MLFLOW_TRACKING_URI": store}  # stderr lists every import
    result = run_cli("src.rerun", "run_id=0123456789abcdef", env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: no MLflow store at {store} " + (
        "(set MLFLOW_TRACKING_URI or tracking.uri)"
    )
    assert "Traceback" not in result.stderr
    assert "| tensorflow" not in result.stderr and "| hydra" in result.stderr
    assert new_store(tmp_path / "store") == store  # the store exists now, empty
    result = run_cli("src.rerun", "run_id=0123456789abcdef", env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: run_id: no run '0123456789abcdef' in {store}"
    assert "| tensorflow" not in result.stderr


def test_another_commit_is_a_warning_or_refused(caplog):
    elsewhere = {"mlflow.source.git.commit": "0" * 40, "git.dirty": "false"}
    with pytest.raises(UserError, match="code differs: the run was made at commit 000000000000"):
        rebuild.check_code(elsewhere, same_code=True)
    rebuild.check_code(elsewhere, same_code=False)
    assert "code differs" in caplog.text and "same_code=true refuses" in caplog.text
    with pytest.raises(UserError, match="uncommitted changes"):
        rebuild.check_code({**elsewhere, "git.dirty": "true"}, same_code=True)


def test_keys_that_conf_now_composes_differently_are_set_back(compose_cfg):
    """A run logged before conf/ changed: its logged values come back as overrides."""
    logged = OmegaConf.to_container(compose_cfg("backbone=simple_cnn"), resolve=True)
    logged["backbone"]["network"]["dropout"] = 0.5
    logged["data"]["path"] = "/data/it's here.npz"
    logged["training"]["optimizer"]["learning_rate"] = 1e-05
    del logged["training"]["callbacks"]["early_stopping"]
    found = rebuild.differences(compose_cfg("backbone=simple_cnn"), logged)
    assert set(found) == {
        "backbone.network.dropout", "data.path", "training.optimizer.learning_rate",
        *(f"training.callbacks.early_stopping.{k}" for k in ("_target_", "monitor", "patience",
                                                              "restore_best_weights")),
    }  # fmt: skip
    fixes = rebuild.overrides_undoing(found, logged)
    assert "~training.callbacks.early_stopping" in fixes
    assert rebuild.differences(compose_cfg("backbone=simple_cnn", *fixes), logged) == {}


def test_a_run_logged_before_src_became_packages_names_its_targets_as_they_are_now(compose_cfg):
    overrides = ("backbone=simple_cnn", "+experiment=fast_baseline")
    logged = OmegaConf.to_container(compose_cfg(*overrides), resolve=True)
    logged["backbone"]["network"]["_target_"] = "src.model.simple_cnn"  # as runs logged them before
    logged["training"]["optimizer"]["learning_rate"]["_target_"] = "src.schedules.one_cycle"
    assert set(rebuild.differences(compose_cfg(*overrides), logged)) == {
        "backbone.network._target_", "training.optimizer.learning_rate._target_",
    }  # fmt: skip
    assert rebuild.differences(compose_cfg(*overrides), rebuild.current_targets(logged)) == {}


def test_a_run_logged_before_keys_were_added_is_rebuilt_as_it_computed(compose_cfg):
    from src import config

    logged = OmegaConf.to_container(compose_cfg("backbone=simple_cnn"), resolve=True)
    del logged["tracking"]["champion"]["min_delta"]
    del logged["backbone"]["freeze_batchnorm"], logged["backbone"]["min_input_size"]
    logged = rebuild.with_added_keys(logged)
    fixes = rebuild.overrides_undoing(rebuild.differences(compose_cfg("backbone=simple_cnn"), logged), logged)
    assert set(fixes) == {"++tracking.champion.min_delta=0.0", "++backbone.min_input_size=32"}
    rebuilt = compose_cfg("backbone=simple_cnn", *fixes)
    assert rebuild.differences(rebuilt, logged) == {}
    config.validate_training(rebuilt)
