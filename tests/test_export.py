"""src.export: a registered classifier as a SavedModel, ONNX and TFLite (float and int8), each checked
against the Keras model and logged to the run the model came from."""

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from src import UserError
from src.data import SAMPLE_PATH
from tests.conftest import CONF, run_cli, use_store


def _cfg(**overrides):
    from src import config

    config.register_schemas()  # as src.export does on import
    with initialize_config_dir(config_dir=str(CONF / "commands"), version_base="1.3"):
        return compose(config_name="export", overrides=[f"{k}={v}" for k, v in overrides.items()])


def test_a_mixed_precision_model_is_rebuilt_in_float32_with_the_same_weights():
    import keras

    from src.models.exports import _leaves, float32_model

    keras.utils.set_random_seed(0)  # the same weights every time: a fixed bf16 rounding, no flaky tolerance
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((28, 28, 1))
        inner = keras.Sequential(
            [keras.layers.Flatten(), keras.layers.Dense(16, activation="relu")], name="inner"
        )
        outputs = keras.layers.Dense(10, activation="softmax", dtype="float32")(inner(inputs))
        model = keras.Model(inputs, outputs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    rebuilt, changed = float32_model(model)
    assert changed and all(layer.dtype_policy.name == "float32" for layer in _leaves(rebuilt))
    for a, b in zip(model.get_weights(), rebuilt.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # pixels in [0, 1]: 0-255 made the random logits so large that bf16's rounding moved a saturated
    # softmax by more than 0.05 in about one run of six
    x = np.random.default_rng(0).uniform(0, 1, (8, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), rebuilt.predict(x, verbose=0), atol=0.05)
    assert float32_model(rebuilt) == (rebuilt, False)  # already float32: kept as it is


def test_bad_export_requests_say_what_is_wrong(tmp_path):
    from src.export import export

    with pytest.raises(UserError, match="format: 'pdf' is not one of saved_model, onnx, tflite"):
        export(_cfg(format="pdf"))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not an empty directory"):
        export(_cfg(out=tmp_path / "taken"))
    with pytest.raises(UserError, match="parity_digits: between 1 and 1000"):
        export(_cfg(out=tmp_path / "a", parity_digits=5000))
    uri = f"sqlite:///{tmp_path}/empty.db"
    with pytest.raises(UserError, match="model: cannot load 'models:/nothing/1'"):
        export(_cfg(out=tmp_path / "b", model="models:/nothing/1", tracking_uri=uri))


@pytest.mark.slow
def test_each_export_matches_the_keras_model_and_is_logged(digit_model, tmp_path):
    import mlflow
    import tensorflow as tf

    from src.export import export
    from src.models.exports import float32_model, run_onnx, run_tflite

    # as a user runs it: a SavedModel placed in a TF Serving version folder
    out = tmp_path / "serving" / "handwritten-digits" / "1"
    env = {"MLFLOW_TRACKING_URI": digit_model["uri"]}
    result = run_cli(
        "src.export", f"model={digit_model['model']}", "format=saved_model", f"out={out}", env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max_diff < 0.0001: ok" in result.stdout and "logged to run" in result.stdout

    sample = np.load(SAMPLE_PATH)
    x, y = sample["x_test"], sample["y_test"]
    use_store(digit_model["uri"])
    keras_model, _ = float32_model(mlflow.keras.load_model(digit_model["model"]))
    reference = keras_model.predict(x[..., None].astype("float32"), verbose=0)
    signature = tf.saved_model.load(str(out)).signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["digits"]
    assert len(signature.structured_outputs) == 1  # one output: the 10 probabilities
    (p,) = signature(digits=tf.constant(x)).values()
    assert np.abs(p.numpy() - reference).max() < 1e-4

    paths = {}
    for fmt in ("onnx", "tflite"):
        target, report, run_id = export(_cfg(model=digit_model["model"], format=fmt, out=tmp_path / fmt))
        assert run_id and all(r.passed for r in report), report
        paths[fmt] = target
    # checked here again, apart from the command's own report
    assert np.abs(run_onnx(paths["onnx"] / "model.onnx", x) - reference).max() < 1e-4
    assert np.abs(run_tflite(paths["tflite"] / "model.tflite", x) - reference).max() < 1e-4
    int8 = run_tflite(paths["tflite"] / "model_int8.tflite", x)
    assert (reference.argmax(1) == y).sum() - (int8.argmax(1) == y).sum() <= 3  # 0.3 points of 1,000
    sizes = {name: (paths["tflite"] / name).stat().st_size for name in ("model.tflite", "model_int8.tflite")}
    assert sizes["model_int8.tflite"] < 0.4 * sizes["model.tflite"]  # int8 weights: a quarter of float32
    report = json.loads((paths["tflite"] / "parity.json").read_text())
    assert [r["file"] for r in report["parity"]] == ["model.tflite", "model_int8.tflite"]

    client = mlflow.MlflowClient()
    logged = {
        a.path
        for fmt in ("saved_model", "onnx", "tflite")
        for a in client.list_artifacts(run_id, f"exports/{fmt}")
    }
    assert {
        "exports/onnx/model.onnx",
        "exports/tflite/model_int8.tflite",
        "exports/saved_model/saved_model.pb",
    } <= logged
    metrics = client.get_run(run_id).data.metrics
    assert metrics["export.tflite_int8.accuracy"] > 0.9 and metrics["export.onnx.max_diff"] < 1e-4
    assert metrics["export.saved_model.max_diff"] < 1e-4 and metrics["export.tflite.max_diff"] < 1e-4


@pytest.fixture(scope="module")
def bf16_model(tmp_path_factory):
    """The main command's simple_cnn (resized to 32x32x3, with dropout) trained in mixed bfloat16, forced
    whatever this machine's training.precision=auto would choose, registered in its own store."""
    from src.train import train
    from tests.conftest import CONF, new_store

    uri = new_store(tmp_path_factory.mktemp("bf16_model"))
    overrides = [
        "backbone=simple_cnn", "data=mnist_sample", "data.train_limit=2000", "augmentation=none",
        "training.epochs=1", "training.verbose=0", "training.precision=mixed_bfloat16",
        "training.digit_score.sample=300", "training.digit_score.when=training", f"tracking.uri={uri}",
    ]  # fmt: skip
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        train(compose(config_name="train", overrides=overrides))
    return {"uri": uri, "model": "models:/handwritten-digits/1"}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["saved_model", "onnx", "tflite"])
def test_a_model_trained_in_bfloat16_exports_in_float32_and_passes_parity(bf16_model, fmt, tmp_path):
    from src.export import export

    use_store(bf16_model["uri"])
    cfg = _cfg(model=bf16_model["model"], format=fmt, out=tmp_path / fmt, tracking_uri=bf16_model["uri"])
    out, report, run_id = export(cfg)
    assert run_id and report and all(r.passed for r in report), report
    for r in report:
        if "int8" not in r.file:
            assert r.agreement >= 0.999 and r.max_diff < 1e-4, r
    summary = json.loads((out / "parity.json").read_text())
    assert summary["rebuilt_in_float32"] is True and summary["compared_in"] == "float32"
    # the float32 computation reads almost every digit as the bfloat16 model does
    assert summary["registered_agreement"] >= 0.98


@pytest.mark.slow
def test_an_export_with_the_wrong_preprocessing_fails_parity(bf16_model, tmp_path):
    import keras
    import mlflow

    from src.models.exports import check, float32_model, save_saved_model, serving_model

    use_store(bf16_model["uri"])
    classifier, _ = float32_model(mlflow.keras.load_model(bf16_model["model"]))
    sample = np.load(SAMPLE_PATH)
    x, y = sample["x_test"][:300], sample["y_test"][:300]
    reference = serving_model(classifier).predict(x, verbose=0)
    digits = keras.Input((28, 28), dtype="uint8", name="digits")
    channel = keras.layers.Reshape((28, 28, 1))(digits)
    inverted = keras.layers.Rescaling(-1.0, offset=255.0)(channel)  # black digits on white: wrong
    broken = keras.Model(digits, classifier(inverted, training=False))
    broken.predict_on_batch(x[:1])
    (path,) = save_saved_model(broken, tmp_path / "broken")
    parity = check(path, x, y, reference)
    assert not parity.passed and parity.agreement < 0.999 and parity.max_diff > 1e-4


@pytest.mark.slow
def test_a_model_trained_in_bfloat16_serves_and_reads(bf16_model):
    import mlflow
    import pandas as pd

    from tests.test_serve import _picture

    use_store(bf16_model["uri"])
    sample = np.load(SAMPLE_PATH)
    x = sample["x_test"][:200]
    keras_model = mlflow.keras.load_model(bf16_model["model"])
    pyfunc = mlflow.pyfunc.load_model(bf16_model["model"])  # what `mlflow models serve` runs
    served = np.asarray(pyfunc.predict(x))
    expected = keras_model.predict(x[..., None].astype("float32"), verbose=0)
    assert (served.argmax(1) == expected.argmax(1)).mean() == 1.0
    reader = mlflow.pyfunc.load_model("models:/handwritten-digits-reader/1")
    reading = reader.predict(pd.DataFrame({"image": [_picture(bf16_model, [3, 5])]}))[0]
    assert reading["number"] == "35"
