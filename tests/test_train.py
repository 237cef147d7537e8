"""End to end: compose the real config, train on the offline sample into a temporary store, check the run."""

import json

import mlflow
import numpy as np
import pytest

from src import UserError
from src.train import train
from tests.conftest import TINY, run_cli, run_python, use_store


def _only_run():
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 1
    return runs[0]


def _artifacts(run_id: str, path: str | None = None) -> list[str]:
    client = mlflow.MlflowClient()
    found = []
    for item in client.list_artifacts(run_id, path):
        found += _artifacts(run_id, item.path) if item.is_dir else [item.path]
    return found


@pytest.mark.slow
def test_the_issue_command_records_everything(store, tmp_path):
    result = run_cli(
        "src.train",
        "backbone=vgg19",
        "backbone.weights=null",
        "data=mnist_sample",
        "data.train_limit=512",
        "data.test_limit=256",
        "training.epochs=2",
        "training.train_eval_sample=100",
        "training.echo_views=1",  # two epochs: echoing pays from more epochs than views
        f"training.feature_cache_dir={tmp_path / 'cache'}",  # not the checkout's, which earlier runs filled
    )
    assert result.returncode == 0, result.stderr[-3000:]

    run = _only_run()
    assert run.info.status == "FINISHED"
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["backbone.name"] == "vgg19"
    assert params["training.epochs"] == "2" and params["top.layers.1.units"] == "1000"
    assert int(params["model.trainable_params"]) < int(params["model.total_params"])
    client = mlflow.MlflowClient()
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 2
    for name in ("loss", "accuracy", "val_loss", "learning_rate"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [0, 1]
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["test_loss"] > 0
    assert {f"test_{k}_{c}" for k in ("precision", "recall", "f1") for c in range(10)} <= set(metrics)
    assert tags["data.name"] == "mnist_sample" and tags["data.test_size"] == "256"
    assert tags["fallback"] == "false"
    assert tags["registered_model"] == "handwritten-digits/1"
    # the default route (frozen backbone, rotation): echoed features; the precision the probe chose
    assert tags["training.route"] == "echoed" and "1 augmented view(s)" in tags["training.route.why"]
    # a top trained for a few steps: XLA's compilation would cost more than it saves
    assert tags["training.xla"] == "false" and 0 < int(tags["training.steps"]) < 1500
    assert tags["feature_cache"] == "computed"
    assert tags["precision"] in ("float32", "mixed_bfloat16") and tags["precision.chosen_by"].startswith(
        "auto:"
    )
    # calibrated: a temperature fitted on validation, the errors before and after, the diagram
    assert metrics["temperature"] > 0 and metrics["val_ece"] < metrics["val_ece_before"]
    assert {"test_ece", "test_ece_before"} <= set(metrics)
    contexts = {i.tags[0].value for i in run.inputs.dataset_inputs}
    assert contexts == {"training", "validation", "test"}

    artifacts = set(_artifacts(run.info.run_id))
    for split in ("train", "validation", "test"):
        assert {f"confusion_matrix/{split}.png", f"confusion_matrix/{split}.csv"} <= artifacts
    assert {
        "learning_curves.png",
        "misclassified/test.png",
        "model_summary.txt",
        "config/config.yaml",
        "reliability_diagram.png",
    } <= artifacts
    assert "config/hydra/overrides.yaml" in artifacts
    # the test set scored whole, the training split on its fixed sample (training.train_eval_sample)
    for split, size in (("test", 256), ("train", 100), ("validation", int(tags["data.validation_size"]))):
        counts = client.download_artifacts(run.info.run_id, f"confusion_matrix/{split}.csv", str(tmp_path))
        assert np.loadtxt(counts, delimiter=",", skiprows=1, dtype=int)[:, 1:].sum() == size

    # a separate process loads the registered model by URI and predicts on raw uint8 digits
    script = (
        "import json, mlflow, numpy as np\n"
        "m = mlflow.pyfunc.load_model('models:/handwritten-digits/latest')\n"
        "x = np.load('src/data/mnist_sample.npz')['x_test'][:7]\n"
        "p = np.asarray(m.predict(x))\n"
        "print(json.dumps({'shape': list(p.shape), 'sums': p.sum(axis=1).tolist()}))\n"
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["shape"] == [7, 10]
    np.testing.assert_allclose(out["sums"], 1.0, rtol=1e-5)


@pytest.mark.slow
def test_evaluate_only_uses_the_registered_model(store, compose_cfg):
    train(compose_cfg("backbone=simple_cnn", *TINY))
    scores = train(compose_cfg("backbone=simple_cnn", *TINY, "training.enabled=false"))
    runs = mlflow.search_runs(search_all_experiments=True, order_by=["start_time ASC"], output_format="list")
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    trained, evaluated = runs
    assert evaluated.data.metrics["test_accuracy"] == pytest.approx(trained.data.metrics["test_accuracy"])
    assert scores["test_accuracy"] == pytest.approx(trained.data.metrics["test_accuracy"])
    assert "val_accuracy" not in evaluated.data.metrics  # nothing was trained
    versions = mlflow.MlflowClient().search_model_versions("name='handwritten-digits'")
    assert len(versions) == 1  # evaluating registers nothing


def test_evaluate_only_with_an_unknown_model_is_a_user_error(store, compose_cfg):
    with pytest.raises(UserError, match="models:/nobody/1"):
        train(compose_cfg(*TINY, "training.enabled=false", "training.model_uri=models:/nobody/1"))
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.slow
def test_offline_run_records_its_fallbacks(store, compose_cfg, offline):
    train(
        compose_cfg("data.train_limit=256", "data.test_limit=128", "training.epochs=1", "training.verbose=0")
    )
    run = _only_run()
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["fallback"] == "true"
    assert "mnist_sample" in tags["fallback.data"]
    assert "random initialisation" in tags["fallback.weights"]
    assert tags["data.name"] == "mnist_sample"


@pytest.mark.parametrize("error,status", [(KeyboardInterrupt, "KILLED"), (RuntimeError, "FAILED")])
def test_a_run_ends_in_its_true_state(store, compose_cfg, monkeypatch, error, status):
    from src.training import fit

    def broken_fit(*args, **kwargs):
        raise error("boom")

    monkeypatch.setattr(fit, "fit", broken_fit)
    with pytest.raises(error):
        train(compose_cfg("backbone=simple_cnn", *TINY))
    run = _only_run()
    assert run.info.status == status
    assert "boom" in run.data.tags["error"] or status == "KILLED"
    assert not mlflow.MlflowClient().search_model_versions("name='handwritten-digits'")


@pytest.mark.slow
def test_the_evaluate_command_scores_a_registered_model_in_a_run_of_its_own(digit_model, tmp_path):
    env = {"MLFLOW_TRACKING_URI": digit_model["uri"]}
    model = digit_model["model"]
    result = run_cli(
        "src.evaluate", f"model={model}", "data=mnist_sample", f"hydra.run.dir={tmp_path}", env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [line for line in result.stdout.splitlines() if line.startswith("test accuracy ")]
    assert printed, result.stdout[-2000:]
    assert float(printed[-1].split()[2].rstrip(",")) == pytest.approx(digit_model["test_accuracy"], abs=1e-3)
    use_store(digit_model["uri"])
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"params.`training.model_uri` = '{model}'",
        output_format="list",
    )
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert "test_accuracy" in runs[0].data.metrics and "final_val_accuracy" not in runs[0].data.metrics
    versions = mlflow.MlflowClient().search_model_versions("name='handwritten-digits'")
    assert [str(v.version) for v in versions] == ["1"]  # nothing registered

    bad = run_cli("src.evaluate", "model=models:/nobody/1", f"hydra.run.dir={tmp_path}", env=env)
    assert bad.returncode == 2 and "models:/nobody/1" in bad.stderr and "Traceback" not in bad.stderr


def test_the_run_opens_while_the_model_starts_training(store, compose_cfg, monkeypatch, caplog):
    """The run is opened in a thread: the first training step does not wait for it, and what the main
    thread logs meanwhile (route, feature cache, start-up) reaches the run."""
    import logging
    import time

    from src.tracking import runs
    from src.training import callbacks

    opened_at = []

    def slow_setup(*args, **kwargs):  # a slow store: the opening outlasts the model's first step
        time.sleep(3)
        runs_log_setup(*args, **kwargs)
        opened_at.append(time.time())

    runs_log_setup = runs.log_setup
    monkeypatch.setattr(runs, "log_setup", slow_setup)
    monkeypatch.setattr(callbacks, "_FIRST_STEP_SEEN", False)  # as in a new process: its first training
    caplog.set_level(logging.INFO, logger="src.training.callbacks")
    train(compose_cfg("backbone=simple_cnn", *TINY))
    (first_step,) = [r.created for r in caplog.records if r.getMessage().startswith("first training step")]
    assert first_step < opened_at[0]
    run = _only_run()
    assert run.info.status == "FINISHED"
    assert run.data.tags["training.route"] == "exact" and run.data.tags["feature_cache"].startswith("off:")
    assert run.data.metrics["startup_s"] > 0 and run.data.params["backbone.name"] == "simple_cnn"
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")] == [0]


def test_what_is_logged_before_the_run_is_open_is_logged_once_it_is(store):
    import threading

    from src.tracking import opening

    gate = threading.Event()
    experiment_id = mlflow.create_experiment("opening")

    def start() -> str:
        assert gate.wait(30)
        return mlflow.start_run(experiment_id=experiment_id, run_name="opened").info.run_id

    with opening.opened(start) as run:
        run.hold(lambda: mlflow.set_tag("held", "first"))
        run.hold(lambda: mlflow.set_tag("held", "second"))  # in order: the later one stands
        assert mlflow.active_run() is None  # the run is not this thread's yet
        gate.set()
        run_id = run.wait()
        assert mlflow.active_run().info.run_id == run_id
        run.hold(lambda: mlflow.set_tag("now", "yes"))  # open: logged at once
        assert mlflow.get_run(run_id).data.tags["now"] == "yes"
    done = mlflow.get_run(run_id)
    assert done.info.status == "FINISHED" and done.data.tags["held"] == "second"


def test_a_run_that_could_not_open_fails_in_the_main_thread(store):
    from src.tracking import opening

    def start() -> str:
        raise RuntimeError("the store is unreachable")

    mlflow.set_experiment("opening")  # a run could be started here: none must be

    with pytest.raises(RuntimeError, match="unreachable"), opening.opened(start) as run:
        run.wait()  # as the first epoch ends: the opening's error, raised again as the context ends
    # training failed too: its error is the one raised (the opening's is logged)
    with pytest.raises(ValueError, match="training broke"), opening.opened(start):
        raise ValueError("training broke")
    assert mlflow.active_run() is None
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_a_run_whose_setup_could_not_be_logged_ends_failed(store, compose_cfg, monkeypatch):
    from src.tracking import runs

    def broken_setup(*args, **kwargs):
        raise OSError("the artifact store is full")

    monkeypatch.setattr(runs, "log_setup", broken_setup)
    with pytest.raises(OSError, match="is full"):
        train(compose_cfg("backbone=simple_cnn", *TINY))
    run = _only_run()
    assert run.info.status == "FAILED" and "is full" in run.data.tags["error"]
    assert mlflow.active_run() is None
    assert not mlflow.MlflowClient().search_model_versions("name='handwritten-digits'")


def test_the_misclassified_figure_names_each_wrong_digit_it_shows():
    from src.tracking.plots import misclassified_figure, plt

    labels = np.arange(50) % 10
    probabilities = np.eye(10)[labels] * 0.4 + 0.06
    wrong = [3, 7, 20, 41]  # read as the next digit, at 0.46
    probabilities[wrong] = np.roll(probabilities[wrong], 1, axis=1)
    images = np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8)
    figure = misclassified_figure(images, labels, probabilities)
    titles = [t.get_text() for t in figure.axes[0].texts]
    assert titles == [f"{labels[i]}→{(labels[i] + 1) % 10} (0.46)" for i in wrong]
    assert figure.texts[0].get_text() == "misclassified: 4 of 50"
    plt.close(figure)

    many = misclassified_figure(images, (labels + 1) % 10, np.eye(10)[labels])  # every one wrong: 36 shown
    assert len(many.axes[0].texts) == 36 and many.texts[0].get_text() == "misclassified: 50 of 50"
    plt.close(many)
