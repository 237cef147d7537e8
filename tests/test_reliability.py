"""Reliability: bad input gets a clear answer and leaves nothing behind; failures lose nothing."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from PIL import Image

from src.data import SAMPLE_PATH
from src.data.pictures import bad_pictures
from tests.conftest import ROOT, free_port, run_cli, serving, use_store


def _store_is_empty(uri: str) -> bool:
    """No runs, no registered models, no experiment beyond MLflow's Default (or no store at all)."""
    path = Path(uri.removeprefix("sqlite:///"))
    if not path.exists():
        return True
    use_store(uri)
    client = mlflow.MlflowClient()
    experiments = {e.name for e in client.search_experiments()}
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return experiments <= {"Default"} and not runs and not client.search_registered_models()


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_files")
    sample = dict(np.load(SAMPLE_PATH))
    (root / "text.npz").write_text("this is not an archive")
    np.savez(root / "no_labels.npz", x_train=sample["x_train"], x_test=sample["x_test"])
    np.savez(root / "wrong_shape.npz", **{**sample, "x_train": np.zeros((10, 32, 32), np.uint8)})
    np.savez(root / "bad_labels.npz", **{**sample, "y_train": sample["y_train"] + 5})
    good = root / "good.npz"
    np.savez(good, **sample)
    (root / "truncated.npz").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    import keras

    keras.applications.VGG19(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(
        root / "vgg19.weights.h5"
    )
    (root / "notes.png").write_text("not a picture")
    return root


TRAIN_CASES = [
    # (overrides, exit code, words the message must hold)
    (["backbone=resnet18"], 1, ["resnet18", "vgg16", "vgg19", "resnet50", "simple_cnn"]),
    (["top=huge"], 1, ["top/huge", "seed", "gap"]),
    (["training.epochz=3"], 1, ["epochz", "not in struct"]),
    (["training.epochs=ten"], 2, ["training.epochs", "'ten'", "whole number >= 1"]),
    (["training.batch_size=-4"], 2, ["training.batch_size", "-4", ">= 1"]),
    (["training.optimizer.learning_rate=0"], 2, ["training.optimizer.learning_rate", "> 0"]),
    (["data.val_split=1.5"], 2, ["data.val_split", "1.5"]),
    (["training.precision=float8"], 2, ["training.precision", "mixed_bfloat16"]),
    (["training.deterministic=maybe"], 2, ["training.deterministic", "'maybe'", "True, False"]),
    (["input_size=16"], 2, ["input_size", ">= 32"]),
    (["training.strategy=tpu"], 2, ["training.strategy", "'tpu'", "default, mirrored"]),
    (["training.strategy=multi_worker"], 2, ["multi_worker", "keras-team/keras#20585", "mirrored"]),
    (["training.cpu_devices=0"], 2, ["training.cpu_devices", ">= 1"]),
    (["training.strategy=mirrored", "training.steps_per_execution=8"], 2, ["keras-team/keras#19246"]),
    (["training.strategy=mirrored", "training.devices=[/gpu:7]"], 2, ["training.devices", "/gpu:7"]),
    (["tracking.uri=sqlite:////proc/no-such-dir/mlflow.db"], 2, ["tracking.uri", "/proc/no-such-dir"]),
    (["data.path={root}/missing.npz"], 2, ["data.path", "no such file"]),
    (["data.path={root}/text.npz"], 2, ["data.path", "not an .npz archive"]),
    (["data.path={root}/no_labels.npz"], 2, ["lacks y_train"]),
    (["data.path={root}/wrong_shape.npz"], 2, ["x_train must be (N, 28, 28)"]),
    (["data.path={root}/bad_labels.npz"], 2, ["labels outside 0-9"]),
    (["data.path={root}/truncated.npz"], 2, ["data.path", "truncated.npz"]),
    (["data=mnist_sample", "backbone.weights={root}/missing.h5"], 2, ["backbone.weights", "no such file"]),
    (["data=mnist_sample", "backbone.weights={root}/vgg19.weights.h5"], 2, ["does not fit vgg16"]),
    (["data=mnist_sample", "backbone.weights=null", "backbone.fine_tune=block9"], 2, ["no layer 'block9'"]),
    (
        ["data=mnist_sample", "training.enabled=false", "training.model_uri=models:/nobody/1"],
        2,
        ["models:/nobody/1"],
    ),
    (
        ["data=mnist_sample", "backbone.weights=null", "training.resume=0123456789abcdef"],
        2,
        ["training.resume"],
    ),
]


@pytest.mark.parametrize("overrides,code,words", TRAIN_CASES, ids=[" ".join(c[0]) for c in TRAIN_CASES])
def test_bad_training_input_is_answered_in_one_line(bad_files, tmp_path, overrides, code, words):
    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    args = [o.format(root=bad_files) for o in overrides]
    started = time.perf_counter()
    result = run_cli(
        "src.train", *args, f"hydra.run.dir={tmp_path / 'run'}", env={"MLFLOW_TRACKING_URI": store}
    )
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr[-2000:])
    assert time.perf_counter() - started < 120  # seconds, not a training run
    assert _store_is_empty(store)


OTHER_CASES = [
    (["src.predict", "model=models:/nobody@champion", "images={root}/notes.png"], 2, ["cannot load"]),
    (["src.predict", "model=runs:/0123456789abcdef/model", "images={root}/notes.png"], 2, ["cannot load"]),
    (["src.predict", "images={root}/*.jpeg"], 2, ["nothing matches"]),
    (["src.predict", "model=models:/x/1"], 2, ["images: give a picture"]),
    (["src.compare", "--sweep", "no-such-sweep"], 2, ["no run with id or name"]),
    (["src.compare", "--filter", "params.x ~~ 1"], 2, ["--filter"]),
    (
        ["src.compare", "--runs", "0123456789abcdef", "fedcba9876543210"],
        2,
        ["--runs: no run '0123456789abcdef'"],
    ),
]


@pytest.mark.parametrize("args,code,words", OTHER_CASES, ids=[" ".join(c[0][:2]) for c in OTHER_CASES])
def test_bad_input_to_predict_and_compare(bad_files, tmp_path, args, code, words):
    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    result = run_cli(*[a.format(root=bad_files) for a in args], env={"MLFLOW_TRACKING_URI": store})
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr
    assert _store_is_empty(store)


@pytest.mark.slow
def test_unreadable_pictures_are_named_and_the_rest_still_read(bad_files, digit_model, tmp_path):
    page = np.full((100, 100), 255, np.uint8)
    page[15:85, 45:55] = 0
    Image.fromarray(page).save(tmp_path / "one.png")
    Image.new("L", (9000, 5000), 255).save(tmp_path / "huge.png")
    result = run_cli(
        "src.predict", f"model={digit_model['model']}",
        f"images=[{bad_files}/notes.png,{tmp_path}/huge.png,{tmp_path}/missing.png,{tmp_path}/one.png]",
        env={"MLFLOW_TRACKING_URI": digit_model["uri"]},
    )  # fmt: skip
    assert result.returncode == 1
    assert "notes.png: not an image" in result.stderr
    assert "huge.png: too large (9000x5000" in result.stderr
    assert "missing.png: no such file" in result.stderr
    assert f"{tmp_path}/one.png: 1" in result.stdout


def _http(url: str, method: str = "GET", body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.slow
def test_the_drawing_server_refuses_bad_requests_and_keeps_serving(digit_model, tmp_path):
    import io

    port = free_port()
    command = [sys.executable, "-m", "src.draw", f"model={digit_model['model']}", f"port={port}"]
    with serving(command, port, "/health", env={"MLFLOW_TRACKING_URI": digit_model["uri"]}):
        url = f"http://127.0.0.1:{port}"
        png = io.BytesIO()
        Image.new("L", (50, 50), 255).save(png, format="PNG")
        assert _http(f"{url}/predict", "POST", b"plain text") == 415
        assert _http(f"{url}/predict", "POST", png.getvalue()[:30]) in (400, 415)  # a truncated PNG
        assert _http(f"{url}/predict") == 405  # GET on the endpoint
        assert _http(f"{url}/nowhere") == 404
        assert _http(f"{url}/predict", "POST", png.getvalue()) == 200  # blank: an answer, not an error
        # the bad pictures of src/data/pictures.py: each answered (never a 500), and the page keeps serving
        answers = {}
        for name, data in bad_pictures(np.random.default_rng(0)).items():
            request = urllib.request.Request(f"{url}/predict", data=data, method="POST")
            with urllib.request.urlopen(request, timeout=60) as response:
                answers[name] = json.loads(response.read())
        assert answers["empty canvas"]["number"] == "" and "no ink" in answers["empty canvas"]["message"]
        assert answers["transparent PNG"]["number"] == "1"  # black strokes on a transparent sheet
        for name in ("single dot", "hundreds of blobs", "pure noise"):
            assert not answers[name]["sure"], (name, answers[name]["text"])  # no sure number from these
        assert answers["40-megapixel photo"]["number"] == "1"  # scaled down, the paper's gradient ignored
        marks = answers["hundreds of blobs"]
        assert marks["number"] == "" and "separate marks: not a line of digits" in marks["message"]
        assert _http(f"{url}/health") == 200
    bad = run_cli("src.draw", "model=models:/nobody/1", env={"MLFLOW_TRACKING_URI": digit_model["uri"]})
    assert bad.returncode == 2 and "cannot load 'models:/nobody/1'" in bad.stderr


def test_a_nan_loss_fails_the_run_and_registers_nothing(store, tmp_path):
    result = run_cli(
        "src.train", "+experiment=smoke", "backbone=simple_cnn", "training.epochs=3",
        "+top.layers.2.bias_initializer={_target_:keras.initializers.Constant,value:nan}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 2
    assert "the loss became nan" in result.stderr and "Traceback" not in result.stderr
    use_store(store)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED" and "TrainingDiverged" in run.data.tags["error"]
    assert len(mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")) <= 1  # stopped at once
    assert not mlflow.MlflowClient().search_registered_models()


def _metric_steps(run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in mlflow.MlflowClient().get_metric_history(run_id, key))


@pytest.mark.slow
def test_an_interrupted_run_is_killed_and_resumes_where_it_stopped(store, tmp_path):
    overrides = [
        "backbone=simple_cnn", "data=mnist_sample", "data.train_limit=1500", "augmentation=none",
        "training.epochs=4", "~training.callbacks.early_stopping", "training.verbose=2",
        "tracking.reader_model=null", "training.digit_score.sample=0",
        f"training.checkpoint_dir={tmp_path / 'checkpoints'}",
    ]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "src.train", *overrides, f"hydra.run.dir={tmp_path / 'run1'}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    # interrupt as the third epoch begins, as its own output says: the store may show the logged epochs a
    # little later (asynchronous logging), and waiting for them there has let the run finish first
    lines: list[str] = []
    third_epoch = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Epoch 3/"):
                third_epoch.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert third_epoch.wait(timeout=300), "".join(lines)[-2000:]
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    reader.join(timeout=10)
    output = "".join(lines)
    assert process.returncode == 130, output[-2000:]
    assert "stopping after the current step" in output  # held while the epoch's pipeline started
    use_store(store)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    run_id = run.info.run_id
    killed = mlflow.get_run(run_id)
    assert killed.info.status == "KILLED"
    done = _metric_steps(run_id, "val_accuracy")
    assert len(done) >= 2 and done == list(range(len(done)))
    assert "training.resume" in output  # the message says how to continue

    result = run_cli(
        "src.train", *overrides, f"training.resume={run_id}", f"hydra.run.dir={tmp_path / 'run2'}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = mlflow.get_run(run_id)
    assert resumed.info.status == "FINISHED" and resumed.data.tags["resumed"] == "true"
    for key in ("loss", "val_accuracy", "epoch_time_s"):
        assert _metric_steps(run_id, key) == list(range(4)), key  # one point per epoch, none twice
    assert resumed.data.metrics["epochs_run"] == 4
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == 1
    assert not (tmp_path / "checkpoints" / run_id).exists()  # removed once the run finished
    again = run_cli("src.train", *overrides, f"training.resume={run_id}")
    assert again.returncode == 2 and "already FINISHED" in again.stderr


@pytest.mark.slow
def test_four_trainings_at_once_on_one_store_all_complete(tmp_path, monkeypatch):
    # a store that does not exist yet: the four create (and migrate) it at the same moment
    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    processes = [
        subprocess.Popen(
            [
                sys.executable, "-m", "src.train", "+experiment=smoke", "backbone=simple_cnn",
                f"tracking.run_name=parallel-{i}", f"training.seed={i}", f"hydra.run.dir={tmp_path / str(i)}",
                # what races is the store: each registers its classifier and reading model, and fits no
                # digit score (its crops and fit, seconds of CPU each, are tested where they are the subject)
                "training.digit_score.sample=0",
            ],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in range(4)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
        assert "database is locked" not in output
    use_store(store)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert sorted(r.info.run_name for r in runs) == [f"parallel-{i}" for i in range(4)]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert {"test_accuracy", "val_accuracy", "epochs_run"} <= set(run.data.metrics)
        artifacts = {
            a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "confusion_matrix")
        }
        assert "confusion_matrix/test.png" in artifacts
    versions = mlflow.MlflowClient().search_model_versions("name='handwritten-digits'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4]


def test_a_closed_pipe_is_written_to_devnull_and_the_writer_goes_on():
    from src.cli import _ReaderMayLeave

    read_end, write_end = os.pipe()
    stream = _ReaderMayLeave(os.fdopen(write_end, "w", buffering=1), "stderr")
    stream.write("read\n")
    assert os.read(read_end, 100) == b"read\n"
    os.close(read_end)  # the reader goes away (`| head`)
    for _ in range(3):  # the first write finds the pipe closed; none raises
        assert stream.write("not read\n") == len("not read\n")
        stream.flush()
    assert stream.diverted
    stream.close()
    unguarded_read, unguarded_write = os.pipe()
    unguarded = os.fdopen(unguarded_write, "w", buffering=1)
    os.close(unguarded_read)
    with pytest.raises(BrokenPipeError):  # what the guard is for: a plain stream raises
        unguarded.write("not read\n")
    with pytest.raises(BrokenPipeError):
        unguarded.close()


def test_a_closed_stream_without_a_file_descriptor_is_replaced():
    import io

    from src.cli import _ReaderMayLeave

    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise io.UnsupportedOperation("fileno")

    stream = _ReaderMayLeave(Closed(), "stderr")
    assert stream.write("not read\n") == len("not read\n") and stream.diverted
    assert stream.write("not read either\n") == len("not read either\n")  # to /dev/null now
    stream.flush()


@pytest.mark.slow
def test_a_training_whose_output_pipe_closes_still_finishes(store, tmp_path):
    # `python -m src.train | head -1`: the reader leaves after one line, the training goes on to the end
    with open(tmp_path / "stderr", "w") as errors:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "src.train", "+experiment=smoke", "backbone=simple_cnn",
                "training.epochs=2", "training.verbose=1", "training.digit_score.sample=0",
                "tracking.reader_model=null", f"hydra.run.dir={tmp_path / 'run'}",
            ],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=errors,
        )  # fmt: skip
        assert process.stdout is not None
        first = process.stdout.readline()
        process.stdout.close()
        process.wait(timeout=600)
    stderr = (tmp_path / "stderr").read_text()
    assert first and process.returncode == 0, stderr[-3000:]
    assert "BrokenPipeError" not in stderr and "stdout was closed by its reader" in stderr
    use_store(store)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    assert mlflow.MlflowClient().search_registered_models()
    assert "test accuracy" in (tmp_path / "run" / "train.log").read_text()  # the log file has it all
