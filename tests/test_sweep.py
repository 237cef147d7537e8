"""Sweeps: a parent run per multirun, child runs per job, the comparison, the champion alias."""

from pathlib import Path

import mlflow
import pytest

from src.sweep import run_name
from tests.conftest import new_store, run_cli, tracking_server, use_store

# A sweep through another launcher: what is tested is where the jobs run and log, so its three jobs train
# the small fast_baseline network on 128 digits (the smoke sweep's ImageNet backbones are tested above;
# building and saving them took about half of every launcher test).
LAUNCHED_SWEEP = [
    "-m", "+experiment=fast_baseline", "data=mnist_sample", "data.train_limit=128", "data.test_limit=64",
    "training.epochs=1", "augmentation=none,rotation,rich",
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
        "comparison/test_accuracy.png",
        "comparison/val_accuracy.png",
    }
    table = mlflow.MlflowClient().download_artifacts(parent.info.run_id, "comparison/comparison.csv")
    lines = Path(table).read_text().splitlines()
    assert lines[0].split(",")[:3] == ["run", key, "status"]
    assert len(lines) == 4 and all(",FINISHED," in line for line in lines[1:])

    best = max(children, key=lambda c: (c.data.metrics["test_accuracy"], -c.info.start_time))
    champion = mlflow.MlflowClient().get_model_version_by_alias("handwritten-digits", "champion")
    best_value = best.data.metrics["test_accuracy"]
    assert mlflow.get_run(champion.run_id).data.metrics["test_accuracy"] == best_value


@pytest.mark.slow
def test_smoke_sweep_groups_and_compares_its_runs(smoke_sweep):
    _check_sweep_structure(smoke_sweep["uri"])
    out = smoke_sweep["stdout"]
    assert "| run " in out and "best_val_accuracy" in out and "models:/handwritten-digits@champion" in out


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
        f"hydra.sweep.dir={tmp_path / 'sweep'}", env={"MLFLOW_TRACKING_URI": uri},
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
        "comparison.csv", "comparison.md", "test_accuracy.png", "val_accuracy.png",
    ]  # fmt: skip
    assert "no_such_layer" not in (out / "comparison.csv").read_text()


@pytest.mark.slow
def test_optuna_search_preset_runs_trials_as_children(tmp_path):
    uri = new_store(tmp_path)
    result = run_cli(
        "src.train", "+experiment=[hparam_search,smoke]", "hydra.sweeper.n_trials=2", "backbone=simple_cnn",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", env={"MLFLOW_TRACKING_URI": uri},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Best value" in result.stdout + result.stderr
    use_store(uri)
    parent, children = _sweep_runs()
    assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}
    rates = {c.data.params["training.optimizer.learning_rate"] for c in children}
    assert len(rates) == 2 and all(1e-4 <= float(r) <= 1e-2 for r in rates)
    assert all(c.info.run_name.startswith("lr") for c in children)
    assert "comparison/comparison.md" in _artifacts(parent.info.run_id, "comparison")


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
