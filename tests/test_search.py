"""Searches a researcher can trust, piece by piece: a trial's end as Optuna records it, an interrupted
search resumed, reporting to the pruner, when a sweep as a whole has failed, repeats over seeds, and a
champion that moves only for a real gain on validation."""

from types import SimpleNamespace

import mlflow
import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.trial import TrialState

from hydra_plugins.handwritten_digits.optuna_search import outcome, requeue_interrupted
from src import tracking
from src.sweeps import comparison, search
from src.sweeps.sweep import TrialEnd, too_many_failures
from tests.conftest import new_store, use_store


def _study(tmp_path, name="s", **kwargs):
    storage = search.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    return optuna.create_study(study_name=name, storage=storage, load_if_exists=True, **kwargs)


def _job(value=None, status=JobStatus.COMPLETED):
    ret = JobReturn()
    ret.status, ret._return_value = status, value
    return ret


def test_a_job_s_return_is_told_to_optuna_as_complete_failed_or_pruned():
    assert outcome(_job(0.93)) == (TrialState.COMPLETE, [0.93], "")
    assert outcome(_job(TrialEnd("FAIL", "ValueError: units=0"))) == (
        TrialState.FAIL,
        None,
        "ValueError: units=0",
    )
    assert outcome(_job(TrialEnd("PRUNED", "val_accuracy 0.1")))[0] == TrialState.PRUNED
    assert outcome(_job(float("nan")))[0] == TrialState.FAIL  # optuna 2.10 would refuse the NaN
    assert outcome(_job(RuntimeError("boom"), JobStatus.FAILED)) == (
        TrialState.FAIL,
        None,
        "RuntimeError: boom",
    )
    with pytest.raises(Exception, match="FAIL: units=0"):  # hydra-optuna-sweeper's own loop: a failed trial
        float(TrialEnd("FAIL", "units=0"))


def test_a_study_persists_in_sqlite_and_an_interrupted_trial_runs_again_first(tmp_path):
    study = _study(tmp_path, direction="maximize")
    done = study.ask({"lr": optuna.distributions.LogUniformDistribution(1e-4, 1e-2)})
    study.tell(done, 0.9)
    interrupted = study.ask({"lr": optuna.distributions.LogUniformDistribution(1e-4, 1e-2)})
    # another process (a new command) opens the same study: optuna 2.10 on SQLAlchemy 2 could not
    again = _study(tmp_path, direction="maximize")
    assert [t.state for t in again.trials] == [TrialState.COMPLETE, TrialState.RUNNING]
    assert requeue_interrupted(again) == [interrupted.number]
    assert again.trials[interrupted.number].state == TrialState.FAIL
    retry = again.ask({"lr": optuna.distributions.LogUniformDistribution(1e-4, 1e-2)})
    assert retry.params == interrupted.params and retry.number == 2


def test_a_trial_reports_every_epoch_and_stops_when_the_pruner_says_so(tmp_path):
    pruner = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 1, "n_warmup_steps": 0}
    study = _study(tmp_path, direction="maximize")
    earlier = study.ask()
    for epoch, value in enumerate([0.90, 0.95, 0.97]):
        earlier.report(value, epoch)
    study.tell(earlier, 0.97)
    trial = study.ask()
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    callback = search.pruning_callback(storage, "s", trial.number, OmegaConf.create(pruner), "val_accuracy")
    model = SimpleNamespace(stop_training=False)
    callback.set_model(model)
    callback.on_epoch_end(0, {"val_accuracy": 0.93})  # above the median: goes on
    assert not model.stop_training and callback.pruned is None
    callback.on_epoch_end(1, {"val_accuracy": 0.40})
    assert model.stop_training and "val_accuracy 0.4000 at epoch 2" in callback.pruned
    reloaded = optuna.load_study(study_name="s", storage=search.open_storage(storage)).trials[trial.number]
    assert reloaded.intermediate_values == {0: 0.93, 1: 0.40}


def _run(status, error=""):
    return SimpleNamespace(info=SimpleNamespace(status=status), data=SimpleNamespace(tags={"error": error}))


def test_a_sweep_fails_as_a_whole_only_when_every_job_or_too_many_trials_failed():
    grid = OmegaConf.create({})
    search_cfg = OmegaConf.create({"n_trials": 4, "max_failure_rate": 0.25, "pruner": None})
    ok, bad, pruned = _run("FINISHED"), _run("FAILED", "ValueError:\nunits=0"), _run("KILLED")
    assert too_many_failures([ok, bad], grid) is None
    assert (
        too_many_failures([bad, bad], grid)
        == "every job of the sweep failed (2); the first: ValueError: units=0"
    )
    assert too_many_failures([ok, bad, pruned], search_cfg) is None  # 1 of 4 is not more than 25%
    stopped = too_many_failures([ok, bad, bad], search_cfg)
    assert (
        stopped.startswith("the search stopped: 2 of its 4 trials failed")
        and "max_failure_rate=0.25" in stopped
    )


def test_the_parent_run_names_the_study_and_its_storage_without_a_password():
    cfg = OmegaConf.create(
        {"study_name": "hparam_search", "storage": "postgresql://alice:secret@db:5432/optuna"}
    )
    assert search.study_tags(cfg) == {
        "optuna.study_name": "hparam_search",
        "optuna.storage": "postgresql://alice:***@db:5432/optuna",
    }
    assert search.study_tags(OmegaConf.create({})) == {}


def _row(run, aug, seed, val, test=0.9, status="FINISHED"):
    return {"run": run, "augmentation.name": aug, "training.seed": seed, "status": status,
            "val_accuracy": val, "test_accuracy": test}  # fmt: skip


def test_repeats_are_grouped_by_all_but_the_seed_ranked_by_mean_and_judged_against_seed_noise():
    columns = ["run", "augmentation.name", "training.seed", *comparison.RESULT_COLUMNS]
    rows = [
        _row("a1", "none", 1, 0.950), _row("a2", "none", 2, 0.960), _row("a3", "none", 3, 0.955),
        _row("b1", "rich", 1, 0.970), _row("b2", "rich", 2, 0.940), _row("b3", "rich", 3, 0.990, test=1.0),
        _row("c1", "rotation", 1, 0.900), _row("c2", "rotation", 2, 0.902),
        _row("c3", "rotation", 3, None, status="FAILED"),
    ]  # fmt: skip
    groups = comparison.configurations(columns, rows)
    assert [(g.name, len(g.runs)) for g in groups] == [
        ("none", 3),
        ("rich", 3),
        ("rotation", 3),
    ]
    order = comparison.ranked(groups)
    assert [g.name for g in order] == [
        "rich",
        "none",
        "rotation",
    ]  # by mean, not by the best run
    assert order[2].scores("val_accuracy") == [0.900, 0.902]  # the failed run is not a score
    summary = comparison.summary_markdown(groups)
    lines = {line.split("|")[2].strip(): line for line in summary.splitlines()[2:]}
    assert "best" in lines["rich"] and "| 3 " in lines["rich"]
    assert "-0.0117, p=0.51: within seed noise" in lines["none"]  # 0.9550 vs 0.9667 +/- 0.025
    assert "-0.0657, p=0.045: beyond seed noise" in lines["rotation"]


@pytest.fixture
def model(tmp_path):
    use_store(new_store(tmp_path))
    mlflow.set_experiment("champions")
    return "digits"


def _register(model, val):
    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        mlflow.log_metrics({"final_val_accuracy": val, "test_accuracy": 1 - val})
    if not client.search_registered_models(f"name='{model}'"):
        client.create_registered_model(model)
    return str(
        client.create_model_version(model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version
    )


def test_the_champion_moves_only_for_a_gain_of_min_delta_on_validation(model):
    first = _register(model, 0.950)
    assert tracking.promote_champion(model, "final_val_accuracy", "max", 0.002, [first]) == first
    close = _register(model, 0.951)  # better, but by less than min_delta: it stays
    assert tracking.promote_champion(model, "final_val_accuracy", "max", 0.002, [close]) == first
    clear = _register(model, 0.953)
    better_elsewhere = _register(model, 0.990)  # not a candidate of this promotion
    assert tracking.promote_champion(model, "final_val_accuracy", "max", 0.002, [clear]) == clear
    assert tracking.champion_version(model) == clear != better_elsewhere
    assert tracking.beats(0.5, 0.6, "min", 0.05) and not tracking.beats(0.58, 0.6, "min", 0.05)
