"""Logins on the shared tracking server (python -m src.server --auth): clean refusals, no secret kept."""

import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from src import UserError
from src.tracking import access
from tests.conftest import TINY, free_port, run_cli, serving

ADMIN_PASSWORD = "admin-password-for-tests"
READER, READER_PASSWORD = "reader", "reader-password-for-tests"
TRAIN = ["src.train", "backbone=simple_cnn", "augmentation=none", *TINY]
SWEEP = ["src.train", "-m", *TRAIN[1:]]
NO_LOGIN = {access.USERNAME: "", access.PASSWORD: ""}


def login(user: str, password: str) -> dict:
    return {access.USERNAME: user, access.PASSWORD: password}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """One server with logins for the module: the admin, a user with MLflow's default (read-only)
    permission, and the experiment the admin made."""
    import mlflow
    import mlflow.server

    root = tmp_path_factory.mktemp("auth_server")
    port = free_port()
    command = [sys.executable, "-m", "src.server", "--auth", "--port", str(port), "--workers", "1"]
    command += ["--backend", f"sqlite:///{root / 'mlflow.db'}", "--artifacts", str(root / "artifacts")]
    env = {"MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD, "MLFLOW_AUTH_CONFIG_PATH": ""}
    with serving(command, port, "/health", env=env, timeout=180), pytest.MonkeyPatch.context() as patch:
        uri = f"http://127.0.0.1:{port}"
        for name, value in login("admin", ADMIN_PASSWORD).items():
            patch.setenv(name, value)
        # as docs/scale.md shows: MLflow's own client for users and permissions
        mlflow.server.get_app_client("basic-auth", tracking_uri=uri).create_user(READER, READER_PASSWORD)
        experiment_id = mlflow.MlflowClient(uri).create_experiment("handwritten-digits")
        patch.delenv(access.USERNAME)
        patch.delenv(access.PASSWORD)
        yield {"uri": uri, "root": root, "experiment_id": experiment_id}


def rest(server: str, endpoint: str, body: dict | None, auth: tuple[str, str] | None = None, **query) -> dict:
    """One call of MLflow's REST API (POST with a body, else GET), with a login or without."""
    url = f"{server}/api/2.0/mlflow/{endpoint}" + ("?" + urllib.parse.urlencode(query) if query else "")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def all_runs(server: dict) -> list[dict]:
    body = {"experiment_ids": [server["experiment_id"]], "max_results": 1000}
    return rest(server["uri"], "runs/search", body, ("admin", ADMIN_PASSWORD)).get("runs", [])


def tag(run: dict, key: str) -> str | None:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}.get(key)


def assert_one_line(result, *words: str) -> None:
    """Exit 2 and one line, `error: ...`, holding the words; nothing else but TensorFlow's start-up notes
    (which come when a command got as far as importing it)."""
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    lines = [line for line in result.stderr.strip().splitlines() if not _tensorflow_notes(line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    for word in words:
        assert word in lines[0], (word, lines[0])


def _tensorflow_notes(line: str) -> bool:
    return line.startswith("WARNING: All log messages before absl") or (
        line[:1] in "IWE" and line[1:5].isdigit() and "] " in line
    )


@pytest.mark.parametrize(
    "password,words",
    [
        ("", ["set MLFLOW_AUTH_ADMIN_PASSWORD"]),
        ("password1234", ["old default"]),
        ("short", ["12 characters"]),
    ],
    ids=["missing", "old default", "short"],
)
def test_the_server_will_not_start_without_a_good_admin_password(tmp_path, password, words):
    backend = tmp_path / "mlflow.db"
    result = run_cli(
        "src.server", "--auth", "--port", str(free_port()), "--backend", f"sqlite:///{backend}",
        env={"MLFLOW_AUTH_ADMIN_PASSWORD": password}, timeout=60,
    )  # fmt: skip
    assert_one_line(result, *words)
    assert not backend.exists() and not result.stdout  # refused before anything was made or started


def test_refusals_name_the_variables_to_set(monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, UNAUTHENTICATED

    server = "http://tracking:5000"
    unauthenticated = MlflowException("API request to endpoint /x failed", error_code=UNAUTHENTICATED)
    monkeypatch.delenv(access.USERNAME, raising=False)
    monkeypatch.delenv(access.PASSWORD, raising=False)
    assert "asks for a login: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in access.refusal(
        unauthenticated, server
    )
    monkeypatch.setenv(access.USERNAME, "bob")
    monkeypatch.setenv(access.PASSWORD, "not-his-password")
    assert "refused the login of 'bob'" in access.refusal(unauthenticated, server)
    denied = MlflowException(
        "API request to endpoint /api/2.0/mlflow/runs/create failed with error code 403 != 200. "
        "Response body: 'Permission denied'",
        error_code=PERMISSION_DENIED,
    )
    try:  # as a run's failure handler raises it: the refusal is the context of another error
        try:
            raise denied
        except MlflowException:
            raise RuntimeError("while marking the run failed") from None
    except RuntimeError as e:
        refused = r"refused runs/create to user 'bob' \(Permission denied\)"
        with pytest.raises(UserError, match=refused), access.refusals(server):
            raise e
    with pytest.raises(ValueError), access.refusals(server):  # anything else is not a refusal
        raise ValueError("a bug")
    with pytest.raises(
        UserError, match=r"use http://tracking:5000 and set MLFLOW_TRACKING_USERNAME"
    ) as error:
        access.check_uri("http://bob:secret@tracking:5000")
    assert "secret" not in str(error.value)


@pytest.mark.slow
def test_a_request_without_a_login_is_refused(auth_server):
    for auth in (None, ("admin", "not-the-password"), (READER, "not-the-password")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            rest(auth_server["uri"], "experiments/search", {"max_results": 10}, auth)
        assert refused.value.code == 401
    experiments = rest(
        auth_server["uri"], "experiments/search", {"max_results": 10}, (READER, READER_PASSWORD)
    )
    assert "handwritten-digits" in {e["name"] for e in experiments["experiments"]}


COMMANDS = [
    # (command, login, what the line names)
    ([*TRAIN, "hydra.run.dir={tmp}/run"], login("admin", "wrong-password"), ["refused the login of 'admin'"]),
    ([*SWEEP, "hydra.sweep.dir={tmp}/sweep"], NO_LOGIN, ["asks for a login"]),
    (["src.compare", "--filter", "params.x = '1'"], login(READER, "wrong-password"), ["refused the login"]),
    (["src.predict", "images=README.md"], NO_LOGIN, ["asks for a login"]),
    (["src.draw", "port={port}"], login("nobody", "any-password"), ["refused the login of 'nobody'"]),
    (["src.rerun", "run_id=0123456789abcdef"], login(READER, "wrong-password"), ["refused the login"]),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,env,words", COMMANDS, ids=["train", "sweep", "compare", "predict", "draw", "rerun"]
)
def test_a_missing_or_wrong_login_gets_one_line_and_exit_2(auth_server, tmp_path, args, env, words):
    before = all_runs(auth_server)
    args = [a.format(tmp=tmp_path, port=free_port()) for a in args]
    result = run_cli(*args, env={"MLFLOW_TRACKING_URI": auth_server["uri"], **env}, timeout=120)
    assert_one_line(result, *words, "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    assert all_runs(auth_server) == before
    assert not (tmp_path / "sweep").exists()  # a sweep stops before it begins


@pytest.mark.slow
def test_a_read_only_user_cannot_log_to_the_experiment(auth_server, tmp_path):
    before = all_runs(auth_server)
    result = run_cli(
        *TRAIN, f"hydra.run.dir={tmp_path / 'run'}",
        env={"MLFLOW_TRACKING_URI": auth_server["uri"], **login(READER, READER_PASSWORD)},
    )  # fmt: skip
    assert_one_line(result, "refused runs/create to user 'reader' (Permission denied)", "an admin can grant")
    assert all_runs(auth_server) == before


@pytest.mark.slow
def test_the_admins_sweep_logs_and_registers_and_no_password_is_kept(auth_server, tmp_path):
    # joblib's workers are other processes: they log in with the variables they inherit
    sweep = tmp_path / "sweep"
    result = run_cli(
        *SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}",
        env={"MLFLOW_TRACKING_URI": auth_server["uri"], **login("admin", ADMIN_PASSWORD)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = all_runs(auth_server)
    (parent,) = [r for r in runs if tag(r, "sweep") == "true"]
    (job,) = [r for r in runs if tag(r, "mlflow.parentRunId") == parent["info"]["run_id"]]
    assert job["info"]["status"] == parent["info"]["status"] == "FINISHED"
    alias = rest(
        auth_server["uri"], "registered-models/alias", None, ("admin", ADMIN_PASSWORD),
        name="handwritten-digits", alias="champion",
    )  # fmt: skip
    assert alias["model_version"]["run_id"] == job["info"]["run_id"]

    # the password is nowhere the runs are kept: not in their params and tags, nor anywhere in the
    # server's files (database, artifacts, users) or the sweep's (Hydra's saved configs, the jobs' logs),
    # where the runs' contents are found
    assert ADMIN_PASSWORD not in json.dumps(runs)
    kept = [*auth_server["root"].rglob("*"), *sweep.rglob("*")]
    contents = b"".join(p.read_bytes() for p in kept if p.is_file())
    assert job["info"]["run_id"].encode() in contents and b"test_accuracy" in contents
    assert (sweep / "0" / ".hydra" / "config.yaml").is_file()
    assert ADMIN_PASSWORD.encode() not in contents
