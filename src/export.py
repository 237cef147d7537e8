"""Export a registered classifier for programs that do not run MLflow, each export checked for parity.

python -m src.export model=models:/handwritten-digits@champion format=saved_model|onnx|tflite out=<dir>

- saved_model: a TensorFlow SavedModel in `out` itself; its `serving_default` signature takes uint8
  `digits` (N, 28, 28) and has one output, `output_0`: the probabilities (N, 10). TF Serving wants it in
  a numbered version folder: out=serving/handwritten-digits/1.
- onnx: out/model.onnx (tf2onnx, the converter Keras uses; `pip install '.[export]'`), input `digits`.
- tflite: out/model.tflite (float) and out/model_int8.tflite (weights and activations quantised to int8,
  calibrated on training digits; uint8 digits in, float probabilities out).

Each file is run on `parity_digits` MNIST test digits beside the Keras model: a float export may differ by
less than 1e-4 in any probability, the int8 one by at most 0.3 points of accuracy. The report
(out/parity.json) and the files are logged to the run the model came from (exports/<format>/), with
metrics export.<format>.max_diff and .accuracy (export.tflite_int8.* for the int8 file). A model trained
in mixed precision is exported, and compared, in float32 with the same weights. An export that fails
parity exits 1, unlogged.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from src import UserError

log = logging.getLogger("src.export")

FORMATS = ("saved_model", "onnx", "tflite")
FLOAT_TOLERANCE = 1e-4  # max difference of any probability, float exports
INT8_TOLERANCE = 0.003  # accuracy, int8 export
CALIBRATION_DIGITS = 1000  # training digits that calibrate int8 quantisation


@dataclass
class Parity:
    file: str
    digits: int
    max_diff: float
    accuracy: float
    keras_accuracy: float
    tolerance: str
    passed: bool


def _float32(config):
    """A model config with every mixed-precision dtype policy replaced by float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and str(config.get("config", {}).get("name")).startswith(
            "mixed_"
        ):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32(value) for value in config]
    return config


def float32_model(classifier):
    """The classifier computing in float32 (the same weights; a model trained in mixed precision computes
    in bfloat16 or float16, which ONNX and TFLite do not run): (model, whether it was rebuilt)."""
    import keras

    if not any(layer.dtype_policy.name.startswith("mixed_") for layer in _leaves(classifier)):
        return classifier, False
    rebuilt = keras.Model.from_config(_float32(classifier.get_config()))
    rebuilt.set_weights(classifier.get_weights())
    return rebuilt, True


def _leaves(model):
    for layer in model.layers:
        yield from _leaves(layer) if hasattr(layer, "layers") else (layer,)


def serving_model(classifier):
    """The classifier with the serving input: uint8 digits (N, 28, 28) -> probabilities (N, 10)."""
    import keras

    digits = keras.Input((28, 28), dtype="uint8", name="digits")
    channel = keras.layers.Reshape((28, 28, 1), name="channel")(digits)
    probabilities = keras.layers.Identity(name="probabilities")(classifier(channel))
    model = keras.Model(digits, probabilities, name="handwritten_digits")
    model.predict_on_batch(np.zeros((1, 28, 28), np.uint8))  # exporters want a model that has run
    return model


def save_saved_model(model, out: Path) -> list[Path]:
    model.export(str(out), format="tf_saved_model", verbose=False)
    return [out]


def run_saved_model(path: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (output,) = serve(digits=tf.constant(x)).values()
    return output.numpy()


def save_onnx(model, out: Path) -> list[Path]:
    try:
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as e:
        raise UserError(
            f"format=onnx needs tf2onnx and onnxruntime ({e.name} is missing): pip install '.[export]'"
        ) from None
    path = out / "model.onnx"
    with warnings.catch_warnings():  # tf2onnx's own use of numpy's deprecated names
        warnings.simplefilter("ignore", FutureWarning)
        model.export(str(path), format="onnx", verbose=False)
    return [path]


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def save_tflite(model, out: Path, calibration: np.ndarray) -> list[Path]:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        (out / "model.tflite").write_bytes(converter.convert())
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
        (out / "model_int8.tflite").write_bytes(converter.convert())
    return [out / "model.tflite", out / "model_int8.tflite"]


def run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    with warnings.catch_warnings():  # "use ai_edge_litert": the same interpreter, one more package
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    (given,), (wanted,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(given["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(wanted["index"])


RUNNERS = {".onnx": run_onnx, ".tflite": run_tflite}


def check(path: Path, x: np.ndarray, y: np.ndarray, reference: np.ndarray) -> Parity:
    run = RUNNERS.get(path.suffix, run_saved_model)
    p = np.asarray(run(path, x), dtype=np.float64)
    if p.shape != reference.shape:
        raise UserError(f"{path}: gives {p.shape} where the Keras model gives {reference.shape}")
    accuracy, keras_accuracy = float((p.argmax(1) == y).mean()), float((reference.argmax(1) == y).mean())
    max_diff = float(np.abs(p - reference).max())
    if "int8" in path.name:  # counted in digits: 3 more wrong of 1,000 is within 0.3 points
        lost = int((reference.argmax(1) == y).sum() - (p.argmax(1) == y).sum())
        tolerance, passed = f"accuracy within {INT8_TOLERANCE:g}", lost <= round(INT8_TOLERANCE * len(y))
    else:
        tolerance, passed = f"max_diff < {FLOAT_TOLERANCE:g}", max_diff < FLOAT_TOLERANCE
    return Parity(path.name, len(y), max_diff, accuracy, keras_accuracy, tolerance, bool(passed))


def _run_of(uri: str) -> str | None:
    import mlflow

    try:
        return mlflow.models.get_model_info(uri).run_id
    except Exception:  # a local path without a run, ...
        return None


def export(cfg: DictConfig) -> tuple[Path, list[Parity], str | None]:
    import mlflow

    from src.data import SAMPLE_PATH, read_npz
    from src.predict import load_classifier

    if cfg.format not in FORMATS:
        raise UserError(f"format: {cfg.format!r} is not one of {', '.join(FORMATS)}")
    out = Path(cfg.out or Path("exports") / cfg.format).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"out: {out} exists and is not an empty directory")
    arrays = read_npz(cfg.digits or SAMPLE_PATH)
    n = int(cfg.parity_digits)
    if not 1 <= n <= len(arrays["y_test"]):
        raise UserError(f"parity_digits: between 1 and {len(arrays['y_test'])}, got {n}")
    x, y = arrays["x_test"][:n].astype(np.uint8), arrays["y_test"][:n]

    classifier = load_classifier(cfg.model, cfg.tracking_uri)
    as_registered = np.asarray(classifier.predict(x, batch_size=256, verbose=0)).argmax(1)
    classifier, rebuilt = float32_model(classifier)
    if rebuilt:
        log.info("the model computes in mixed precision: exported (and compared) in float32, same weights")
    model = serving_model(classifier)
    reference = np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float64)

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if cfg.format == "saved_model":
        files = save_saved_model(model, out)
    elif cfg.format == "onnx":
        files = save_onnx(model, out)
    else:
        size = min(CALIBRATION_DIGITS, len(arrays["y_train"]))
        pick = np.random.default_rng(0).choice(len(arrays["y_train"]), size, replace=False)
        files = save_tflite(model, out, arrays["x_train"][pick].astype(np.uint8))
    log.info("exported %s in %.1f s", cfg.format, time.perf_counter() - start)
    report = [check(path, x, y, reference) for path in files]
    summary = {
        "model": cfg.model,
        "format": cfg.format,
        # the model as registered, in the precision it was trained in (the exports compute in float32)
        "registered_accuracy": float((as_registered == y).mean()),
        "compared_in": "float32" if rebuilt else "the registered model's own precision",
        "parity": [asdict(p) for p in report],
    }
    (out / "parity.json").write_text(json.dumps(summary, indent=2))
    run_id = _run_of(cfg.model) if cfg.log and all(p.passed for p in report) else None
    if run_id:
        client = mlflow.MlflowClient()
        if cfg.format == "saved_model":
            client.log_artifacts(run_id, str(out), "exports/saved_model")
        else:
            for path in [*files, out / "parity.json"]:
                client.log_artifact(run_id, str(path), f"exports/{cfg.format}")
        for p in report:
            key = cfg.format + ("_int8" if "int8" in p.file else "")  # export.tflite_int8.accuracy, ...
            client.log_metric(run_id, f"export.{key}.max_diff", p.max_diff)
            client.log_metric(run_id, f"export.{key}.accuracy", p.accuracy)
    return out, report, run_id


@hydra.main(config_path="../conf", config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        out, report, run_id = export(cfg)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    for p in report:
        verdict = "ok" if p.passed else "FAILED"
        where = out / p.file if p.file != out.name else out
        print(
            f"{where}: max difference {p.max_diff:.2e}, accuracy {p.accuracy:.4f} (Keras "
            f"{p.keras_accuracy:.4f}) on {p.digits} test digits; {p.tolerance}: {verdict}"
        )
    if not all(p.passed for p in report):
        print("error: an export does not match the Keras model; nothing was logged", file=sys.stderr)
        sys.exit(1)
    if run_id:
        print(f"logged to run {run_id} (artifacts exports/{cfg.format}/)")
    elif cfg.log:
        print(f"not logged: {cfg.model} was not logged by a run")


if __name__ == "__main__":
    main()
