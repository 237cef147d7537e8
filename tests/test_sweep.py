"""Sweeps: a parent run per multirun, child runs per job, the comparison, the champion alias; the MLflow UI
of `make ui` showing a sweep, driven in a real headless Chromium."""

from pathlib import Path

import mlflow
import pytest

from src.sweeps.names import run_name
from tests.conftest import SCREENSHOTS, free_port, new_store, run_cli, serving, tracking_server, use_store

# A sweep through another launcher: what is tested is where the jobs run and log, so its three jobs train
# the small fast_baseline network on 128 digits (the smoke sweep's ImageNet backbones are tested above;
# building and saving them took about half of every launcher test). The sweeps below register no reading
# model and fit no digit score (NO_READER): the smoke sweep above checks that the reading model of a
# sweep's champion, registered on its first read, follows the champion.
NO_READER = ("tracking.reader_model=null", "training.digit_score.sample=0")
LAUNCHED_SWEEP = [
    "-m", "+experiment=fast_baseline", "data=mnist_sample", "data.train_limit=128", "data.test_limit=64",
    "training.epochs=1", "augmentation=none,rotation,rich", *NO_READER,
]  # fmt: skip
LAUNCHED = ("augmentation.name", ["none", "rich", "rotation"])
BACKBONES = ("backbone.name", ["resnet50", "vgg16", "vgg19"])


def _sweep_runs():
    runs = mlflow.search_runs(search_all_experiments=True, order_by=["start_time ASC"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("sweep") == "true"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1
    return parent, children


def _artifacts(run_id, path):
    return {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, path)}


def _check_sweep_structure(uri: str, varied: tuple[str, list[str]] = BACKBONES) -> None:
    """One parent, a child per job named by the choice it varies (`key`, the sorted `names`), a comparison."""
    key, names = varied
    use_store(uri)
    parent, children = _sweep_runs()
    assert parent.info.status == "FINISHED"
    assert sorted(c.info.run_name for c in children) == names
    assert {c.info.status for c in children} == {"FINISHED"}
    assert sorted(c.data.params[key] for c in children) == names
    assert _artifacts(parent.info.run_id, "comparison") == {
        "comparison/comparison.csv",
        "comparison/comparison.md",
        "comparison/accuracy.png",
        "comparison/val_accuracy.png",
    }
    table = mlflow.MlflowClient().download_artifacts(parent.info.run_id, "comparison/comparison.csv")
    lines = Path(table).read_text().splitlines()
    assert lines[0].split(",")[:3] == ["run", key, "status"]
    assert len(lines) == 4 and all(",FINISHED," in line for line in lines[1:])

    # the champion is the best by validation accuracy (the test accuracy is only reported)
    best_value = max(c.data.metrics["final_val_accuracy"] for c in children)
    champion = mlflow.MlflowClient().get_model_version_by_alias("handwritten-digits", "champion")
    assert mlflow.get_run(champion.run_id).data.metrics["final_val_accuracy"] == best_value


@pytest.mark.slow
def test_smoke_sweep_groups_and_compares_its_runs(smoke_sweep):
    _check_sweep_structure(smoke_sweep["uri"])
    from src.apps.classifier import Classifier

    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("handwritten-digits", "champion")
    # no job fitted a digit score or registered a reading model: the first read of the champion does
    uri = f"models:/handwritten-digits/{champion.version}"
    assert "digit_score" not in (mlflow.models.get_model_info(uri).metadata or {})
    assert not client.search_model_versions("name = 'handwritten-digits-reader'")
    assert Classifier(uri, smoke_sweep["uri"]).digit_score is not None
    reader = client.get_model_version_by_alias("handwritten-digits-reader", "champion")
    assert reader.tags["classifier"] == f"handwritten-digits/{champion.version}"  # the reader follows
    out = smoke_sweep["stdout"]
    assert "| run " in out and "val_accuracy" in out and "models:/handwritten-digits@champion" in out
    assert "best by validation accuracy: " in out
    # registration is quiet: no artifact progress bars, no request for type hints
    for noise in ("Downloading artifacts", "Add type hints"):
        assert noise not in smoke_sweep["stderr"] and noise not in out, noise


# here, not in a file of its own: under `make test` each file runs in one worker, and the smoke sweep (a
# session fixture, about two minutes) ran once more in the other worker for this test alone
@pytest.mark.slow
def test_ui_shows_the_sweep_and_a_childs_confusion_matrix(smoke_sweep, browser):
    use_store(smoke_sweep["uri"])
    experiment = mlflow.get_experiment_by_name("handwritten-digits")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    parent = next(r for r in runs if r.data.tags.get("sweep") == "true")
    child = next(r for r in runs if r.info.run_name == "vgg19")

    port = free_port()
    with serving(
        ["make", "ui", f"PORT={port}"], port, "/health", env={"MLFLOW_TRACKING_URI": smoke_sweep["uri"]}
    ):
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        base = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}"
        page.goto(f"{base}/runs")
        sweep_link = page.get_by_text(parent.info.run_name, exact=True)
        sweep_link.wait_for(timeout=60_000)
        # the children are nested under the parent: expand it
        sweep_cell = sweep_link.locator("xpath=ancestor::*[@role='presentation'][1]")
        sweep_cell.locator("button").first.click()
        for name in ("vgg16", "vgg19", "resnet50"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "ui-sweep.png")

        page.goto(f"{base}/runs/{child.info.run_id}/artifacts/confusion_matrix/test.png")
        page.get_by_text("confusion_matrix/test.png").first.wait_for(timeout=60_000)
        image = page.locator("img[src^='blob:']").first
        image.wait_for(timeout=30_000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 300", arg=image.element_handle())
        page.screenshot(path=SCREENSHOTS / "ui-confusion-matrix.png")
        page.close()


@pytest.mark.slow
def test_joblib_launcher_gives_the_same_structure(tmp_path):
    uri = new_store(tmp_path)
    result = run_cli(
        "src.train", *LAUNCHED_SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", env={"MLFLOW_TRACKING_URI": uri},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    _check_sweep_structure(uri, LAUNCHED)


@pytest.mark.slow
def test_a_failed_job_shows_in_the_comparison_and_stops_nothing(tmp_path):
    uri = new_store(tmp_path)
    result = run_cli(
        "src.train", "-m", "+experiment=smoke", "backbone=simple_cnn", "backbone.fine_tune=all,no_such_layer",
        *NO_READER, f"hydra.sweep.dir={tmp_path / 'sweep'}", env={"MLFLOW_TRACKING_URI": uri},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    use_store(uri)
    parent, children = _sweep_runs()
    status = {c.info.run_name: c.info.status for c in children}
    assert status == {"fine_tune=all": "FINISHED", "fine_tune=no_such_layer": "FAILED"}
    failed = next(c for c in children if c.info.status == "FAILED")
    assert "no_such_layer" in failed.data.tags["error"]
    table = mlflow.MlflowClient().download_artifacts(parent.info.run_id, "comparison/comparison.md")
    assert "FAILED" in Path(table).read_text()

    # the comparison can be rebuilt later, by the sweep's name
    again = run_cli("src.compare", "--sweep", parent.info.run_name, env={"MLFLOW_TRACKING_URI": uri})
    assert again.returncode == 0, again.stderr[-3000:]
    assert "fine_tune=no_such_layer" in again.stdout and "FAILED" in again.stdout

    # or for any runs matching a filter
    out = tmp_path / "cmp"
    picked = run_cli(
        "src.compare", "--filter", "attributes.status = 'FINISHED'", "--out", str(out),
        env={"MLFLOW_TRACKING_URI": uri},
    )  # fmt: skip
    assert picked.returncode == 0, picked.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "accuracy.png", "comparison.csv", "comparison.md", "val_accuracy.png",
    ]  # fmt: skip
    assert "no_such_layer" not in (out / "comparison.csv").read_text()


@pytest.mark.slow
def test_repeats_over_seeds_are_compared_by_mean_and_spread(tmp_path):
    uri = new_store(tmp_path)
    result = run_cli(
        "src.train", "-m", "+experiment=fast_baseline", "data=mnist_sample", "data.train_limit=256",
        "data.test_limit=64", "training.epochs=1", "augmentation=none,rotation", "training.seed=1,2,3",
        *NO_READER, f"hydra.sweep.dir={tmp_path / 'sweep'}", env={"MLFLOW_TRACKING_URI": uri},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    use_store(uri)
    parent, children = _sweep_runs()
    assert len(children) == 6
    table = Path(
        mlflow.MlflowClient().download_artifacts(parent.info.run_id, "comparison/comparison.md")
    ).read_text()
    summary = table.split("By configuration (repeats over seeds):")[1]
    rows = [line for line in summary.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert len(rows) == 2 and all(" | 3 " in row for row in rows)  # n=3 per configuration

    # the best configuration is the one with the higher mean validation accuracy, and the champion is
    # one of its runs
    def mean_val(name):
        runs = [c for c in children if c.data.params["augmentation.name"] == name]
        return sum(c.data.metrics["final_val_accuracy"] for c in runs) / len(runs)

    best = max(["none", "rotation"], key=mean_val)
    assert rows[0].split("|")[2].strip() == best
    assert parent.data.tags["sweep.best"] == best
    import statistics

    from scipy import stats

    scores = {
        name: [
            c.data.metrics["final_val_accuracy"]
            for c in children
            if c.data.params["augmentation.name"] == name
        ]
        for name in ("none", "rotation")
    }
    if statistics.pstdev(scores["none"]) == statistics.pstdev(scores["rotation"]) == 0:
        within = scores["none"][0] == scores["rotation"][0]
    else:
        within = stats.ttest_ind(scores["none"], scores["rotation"], equal_var=False).pvalue >= 0.05
    assert "best" in rows[0] and ("within seed noise" in rows[1]) == within
    champion = mlflow.MlflowClient().get_model_version_by_alias("handwritten-digits", "champion")
    assert mlflow.get_run(champion.run_id).data.params["augmentation.name"] == best
    assert f"best by validation accuracy: {best}" in result.stdout


def _search(tmp_path, uri, name, *overrides):
    return run_cli(
        "src.train", "+experiment=[hparam_search,smoke]", "backbone=simple_cnn", "training.epochs=2",
        f"hydra.sweep.dir={tmp_path / name}", f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}",
        *NO_READER, *overrides, env={"MLFLOW_TRACKING_URI": uri},
    )  # fmt: skip


def _study(tmp_path):
    import optuna

    from src.sweeps.search import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    return optuna.load_study(study_name="hparam_search", storage=storage)


@pytest.mark.slow
def test_a_search_survives_failed_trials_continues_its_study_and_prunes(tmp_path):
    uri = new_store(tmp_path)
    # a search space holding an invalid value: a dense layer of 0 units fails to build
    space = ["top.layers.2.units=choice(64,0)", "hydra.sweeper.max_failure_rate=0.5"]
    first = _search(tmp_path, uri, "first", "hydra.sweeper.n_trials=4", *space)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Best value" in first.stdout + first.stderr
    states = [t.state.name for t in _study(tmp_path).trials]
    assert sorted(states) == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    use_store(uri)
    parent, children = _sweep_runs()
    status = sorted(c.info.status for c in children)
    assert status == ["FAILED", "FINISHED", "FINISHED", "FINISHED"] and parent.info.status == "FINISHED"
    failed = next(c for c in children if c.info.status == "FAILED")
    assert "units" in failed.data.tags["error"] and failed.info.run_name.startswith("lr")
    assert "units=0" in failed.info.run_name
    rates = {c.data.params["training.optimizer.learning_rate"] for c in children if c.data.params}
    assert len(rates) == 3 and all(1e-4 <= float(r) <= 1e-2 for r in rates)
    assert parent.data.tags["optuna.study_name"] == "hparam_search"
    assert parent.data.tags["optuna.storage"] == f"sqlite:///{tmp_path / 'optuna.db'}"
    assert _artifacts(parent.info.run_id, "optuna") == {
        "optuna/optimization_history.png", "optuna/param_importances.png",
    }  # fmt: skip
    table = mlflow.MlflowClient().download_artifacts(parent.info.run_id, "comparison/comparison.md")
    assert "FAILED" in Path(table).read_text()

    # the same search again continues the study: two more trials, new points, numbered on from 4; this
    # time a pruner stops every trial below 99% validation accuracy after its first epoch
    again = _search(
        tmp_path, uri, "again", "hydra.sweeper.n_trials=2", *space,
        "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=0.99",
        "hydra.sweeper.pruner.n_warmup_steps=0",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    trials = _study(tmp_path).trials
    assert [t.number for t in trials] == [0, 1, 2, 3, 4, 5]
    assert sorted(t.state.name for t in trials[4:]) == ["FAIL", "PRUNED"]  # units=0 failed again
    assert all(t.params not in [old.params for old in trials[:4]] for t in trials[4:])
    latest = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.sweep = 'true'", order_by=["start_time DESC"],
        output_format="list",
    )[0]  # fmt: skip
    pruned = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{latest.info.run_id}' and "
        "tags.`sweep.trial_state` = 'PRUNED'", output_format="list",
    )  # fmt: skip
    assert len(pruned) == 1
    assert all(r.info.status == "KILLED" and r.data.metrics["epochs_run"] == 1 for r in pruned)
    assert all("registered_model" not in r.data.tags for r in pruned)  # a pruned trial registers nothing

    # a changed search space cannot continue the study: one line, before any job
    changed = _search(
        tmp_path, uri, "changed", "hydra.sweeper.n_trials=1", "top.layers.2.units=choice(32,64)"
    )
    assert changed.returncode == 2 and len(_study(tmp_path).trials) == 6
    assert changed.stderr.strip().splitlines()[-1].startswith("error: study hparam_search in sqlite:///")
    assert "searched top.layers.2.units over other values" in changed.stderr


@pytest.mark.slow
def test_a_search_with_too_many_failures_ends_with_one_line(tmp_path):
    # run as a user would, from a directory of their own with the preset's defaults: the sweep directory
    # and the study's database are made in it
    uri = new_store(tmp_path / "store")
    result = run_cli(
        "src.train", "+experiment=[hparam_search,smoke]", "backbone=simple_cnn", "hydra.sweeper.n_trials=3",
        "top.layers.2.units=choice(0)", "hydra.sweeper.max_failure_rate=0.5",
        cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri},
    )  # fmt: skip
    assert (tmp_path / "mlruns" / "optuna.db").is_file() and (tmp_path / "experiments" / "multirun").is_dir()
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the search stopped: 2 of its 3 trials failed, more than ")
    assert "max_failure_rate=0.5" in last and "units" in last
    assert [t.state.name for t in _study(tmp_path / "mlruns").trials] == ["FAIL", "FAIL"]
    use_store(uri)
    parent, children = _sweep_runs()
    assert parent.info.status == "FAILED" and [c.info.status for c in children] == ["FAILED", "FAILED"]
    assert parent.data.tags["optuna.storage"] == f"sqlite:///{tmp_path}/mlruns/optuna.db"
    assert parent.data.tags["sweep.dir"].startswith(str(tmp_path / "experiments" / "multirun"))


def test_compare_refuses_unknown_sweeps_and_bad_filters(store):
    bad = run_cli("src.compare", "--sweep", "no-such-sweep")
    assert bad.returncode == 2 and "no run with id or name 'no-such-sweep'" in bad.stderr
    bad = run_cli("src.compare", "--filter", "params.x ~~ 1")
    assert bad.returncode == 2 and "--filter" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "job,sweep,name",
    [
        (["backbone=vgg19"], ["backbone=vgg16,vgg19"], "vgg19"),
        (
            ["backbone=resnet50", "training.optimizer.learning_rate=0.001"],
            ["backbone=resnet50,vgg16", "training.optimizer.learning_rate=0.001,0.01"],
            "resnet50-lr0.001",
        ),
        (["+experiment=smoke", "top.layers.1.units=256"], ["+experiment=smoke"], "units=256"),
        (["data=mnist_sample"], ["data=mnist_sample"], ""),
        (
            [
                "training.optimizer.learning_rate=0.0005611516415334506",
                "top.layers.1.rate=0.1",
                "top.layers.3.rate=0.2",
            ],
            [],
            "lr0.000561-1.rate=0.1-3.rate=0.2",
        ),
    ],
)
def test_run_names_say_what_differs(job, sweep, name):
    assert run_name(job, sweep) == name


@pytest.mark.slow
def test_submitit_launcher_local_executor_logs_to_a_tracking_server(tmp_path):
    # the SLURM launcher's code path, with submitit's local executor running each job as a process, and
    # the runs going to a tracking server over HTTP as on a cluster
    with tracking_server(tmp_path / "server") as server:
        result = run_cli(
            "src.train", *LAUNCHED_SWEEP, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=20",
            f"hydra.sweep.dir={tmp_path / 'sweep'}", env={"MLFLOW_TRACKING_URI": server},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert list((tmp_path / "sweep" / ".submitit").iterdir())  # submitit ran the jobs
        _check_sweep_structure(server, LAUNCHED)


@pytest.fixture
def ray_cluster(tmp_path_factory):
    """A local Ray cluster started like a lab's: `ray start --head` with token authentication, from another
    directory and without this test's environment (its workers know neither the store nor the project
    directory). It makes its own token and home, so it needs nothing from the user's home and writes
    nothing there, and listens on loopback only."""
    import os
    import re
    import shutil
    import subprocess
    import sys
    import tempfile
    import uuid

    from tests.conftest import free_port

    ray = str(Path(sys.executable).parent / "ray")
    root = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths have a length limit
    (root / "home").mkdir()
    token = root / "auth_token"
    token.write_text(uuid.uuid4().hex)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}
    env.update(
        HOME=str(root / "home"),
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token),
        # a one-machine cluster: Ray then takes 127.0.0.1 as the node's address and binds every port there
        # (otherwise it finds the machine's network address and listens on all interfaces)
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
    )
    port = free_port()
    start = subprocess.run(
        [ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         "--disable-usage-stats", f"--temp-dir={root / 'ray'}"],
        cwd=root, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    try:
        assert start.returncode == 0, start.stderr[-3000:]
        assert "Local node IP: 127.0.0.1" in re.sub(r"\x1b\[[0-9;]*m", "", start.stderr + start.stdout)
        yield {"address": f"127.0.0.1:{port}", "env": env, "root": root}
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def _ray_pids(root: Path) -> set[int]:
    """The processes of the Ray cluster whose files are under root."""
    import subprocess

    listing = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True).stdout
    return {int(pid) for pid in listing.split()}


def _listening_addresses(pids: set[int]) -> set[str]:
    """The local addresses on which these processes accept TCP connections."""
    import subprocess

    addresses = set()
    for line in subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            addresses.add(line.split()[3].rsplit(":", 1)[0])
    return addresses


@pytest.mark.slow
def test_ray_launcher_on_a_running_cluster_gives_the_same_structure(tmp_path, ray_cluster):
    import subprocess
    import sys

    home = Path.home() / ".ray"
    before = sorted(home.rglob("*")) if home.exists() else None
    address = ray_cluster["address"]
    listening = _listening_addresses(_ray_pids(ray_cluster["root"]))
    assert listening and listening <= {"127.0.0.1", "[::ffff:127.0.0.1]"}, listening

    # a client without the cluster's token is refused (run while the sweep runs: it spends its time retrying)
    stranger = subprocess.Popen(
        [sys.executable, "-c", f"import ray; ray.init(address={address!r}); print('connected')"],
        env={**ray_cluster["env"], "RAY_AUTH_TOKEN_PATH": "", "RAY_AUTH_TOKEN": "not-the-token"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    uri = new_store(tmp_path)
    # as on a lab's cluster: RAY_ADDRESS names the head, and the cluster's token authenticates
    env = {**ray_cluster["env"], "MLFLOW_TRACKING_URI": uri, "RAY_ADDRESS": address}
    result = run_cli(
        "src.train", *LAUNCHED_SWEEP, "hydra/launcher=ray_cluster", f"hydra.sweep.dir={tmp_path / 'sweep'}",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Connected to Ray cluster" in result.stderr + result.stdout
    _check_sweep_structure(uri, LAUNCHED)
    # the workers started in the cluster's directory; jobs work from the one the sweep was launched in
    # (a worker process runs several jobs: the first one on it moves)
    logs = [p.read_text() for p in (tmp_path / "sweep").glob("*/train.log")]
    assert len(logs) == 3 and any("working from the launch directory" in text for text in logs)

    refused = stranger.communicate(timeout=120)[0]
    assert stranger.returncode != 0 and "connected" not in refused.splitlines()
    assert "Authentication token is missing or incorrect" in refused, refused[-3000:]
    assert (sorted(home.rglob("*")) if home.exists() else None) == before  # the user's home is untouched
