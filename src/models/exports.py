"""A Keras classifier in other formats (SavedModel, ONNX, LiteRT float and int8), each run beside the
Keras model to check parity. `python -m src.export` exports a registered model with these."""

from __future__ import annotations

import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from src import UserError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    import keras

log = logging.getLogger("src.export")

FORMATS = ("saved_model", "onnx", "tflite")
# An export computes in float32 (ONNX and LiteRT run no bfloat16), and is compared with the Keras model
# computed in float32 too (a mixed-precision model is rebuilt so, same weights): the check measures the
# export, not the precision. The largest difference in any probability that two float32 computations of
# the same network may show (other kernels, other order of sums):
FLOAT_TOLERANCE = 1e-4
AGREEMENT = 0.999  # share of test digits on which an export and the Keras model read the same digit
INT8_TOLERANCE = 0.003  # accuracy, int8 export
CALIBRATION_DIGITS = 1000  # training digits that calibrate int8 quantisation


@dataclass
class Parity:
    file: str
    digits: int
    agreement: float  # share of digits read the same by the export and the Keras model
    max_diff: float
    accuracy: float
    keras_accuracy: float
    tolerance: str
    passed: bool


def _float32(config: Any) -> Any:
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


def float32_model(classifier: keras.Model) -> tuple[keras.Model, bool]:
    """The classifier computing in float32 (the same weights; a model trained in mixed precision computes
    in bfloat16 or float16, which ONNX and TFLite do not run): (model, whether it was rebuilt)."""
    import keras

    if not any(layer.dtype_policy.name.startswith("mixed_") for layer in _leaves(classifier)):
        return classifier, False
    rebuilt = keras.Model.from_config(_float32(classifier.get_config()))
    rebuilt.set_weights(classifier.get_weights())
    return rebuilt, True


def _leaves(model: keras.Model) -> Iterator[keras.Layer]:
    for layer in model.layers:
        yield from _leaves(layer) if hasattr(layer, "layers") else (layer,)


def serving_model(classifier: keras.Model) -> keras.Model:
    """The classifier with the serving input: uint8 digits (N, 28, 28) -> probabilities (N, 10)."""
    import keras

    digits = keras.Input((28, 28), dtype="uint8", name="digits")
    channel = keras.layers.Reshape((28, 28, 1), name="channel")(digits)
    # inference mode said, not inherited: a model registered with a Resizing node that recorded Keras's
    # default training=True would otherwise export with its dropout on
    probabilities = keras.layers.Identity(name="probabilities")(classifier(channel, training=False))
    model = keras.Model(digits, probabilities, name="handwritten_digits")
    model.predict_on_batch(np.zeros((1, 28, 28), np.uint8))  # exporters want a model that has run
    return model


def save_saved_model(model: keras.Model, out: Path) -> list[Path]:
    model.export(str(out), format="tf_saved_model", verbose=False)
    return [out]


def run_saved_model(path: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (output,) = serve(digits=tf.constant(x)).values()
    return output.numpy()


def save_onnx(model: keras.Model, out: Path) -> list[Path]:
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


def save_tflite(model: keras.Model, out: Path, calibration: np.ndarray) -> list[Path]:
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
    """The export at `path` run on digits `x` beside the Keras model's probabilities `reference` (both in
    float32): a float export must read the same digit on AGREEMENT of them and differ by less than
    FLOAT_TOLERANCE in any probability; the int8 one may lose INT8_TOLERANCE of accuracy."""
    run = RUNNERS.get(path.suffix, run_saved_model)
    p = np.asarray(run(path, x), dtype=np.float64)
    if p.shape != reference.shape:
        raise UserError(f"{path}: gives {p.shape} where the Keras model gives {reference.shape}")
    accuracy, keras_accuracy = float((p.argmax(1) == y).mean()), float((reference.argmax(1) == y).mean())
    agreement = float((p.argmax(1) == reference.argmax(1)).mean())
    max_diff = float(np.abs(p - reference).max())
    if "int8" in path.name:  # counted in digits: 3 more wrong of 1,000 is within 0.3 points
        lost = int((reference.argmax(1) == y).sum() - (p.argmax(1) == y).sum())
        tolerance, passed = f"accuracy within {INT8_TOLERANCE:g}", lost <= round(INT8_TOLERANCE * len(y))
    else:
        tolerance = f"agreement >= {AGREEMENT:.1%}, max_diff < {FLOAT_TOLERANCE:g}"
        passed = agreement >= AGREEMENT and max_diff < FLOAT_TOLERANCE
    return Parity(path.name, len(y), agreement, max_diff, accuracy, keras_accuracy, tolerance, bool(passed))
