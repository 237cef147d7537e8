"""The reading model in the registry: pictures in, numbers out, callable without this repository.

`handwritten-digits-reader` is an MLflow pyfunc registered beside each classifier version (tagged with
the version it wraps). It holds a copy of the classifier and the picture-reading pipeline of
`src.predict` (this module, `src.reading.reader`, `src.reading.segmentation` and the steps it reads with
travel with it as code), so `mlflow models serve` on it takes pictures as base64 PNG/JPEG strings:

    {"inputs": ["<base64>", ...]}  or  {"dataframe_split": {"columns": ["image"], "data": [["<base64>"]]}}

and answers, per picture, what `python -m src.predict json=true` prints: the number as a digit string,
the text with unsure digits as "?", and each digit's most likely classes, box and doubt. Parameters
(`"params": {"top": 10, "sure": 0.95}`) change how many classes are listed and the sure threshold.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

if TYPE_CHECKING:
    import keras
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo

from src import UserError
from src.reading import segmentation
from src.reading.digit_score import DigitScore
from src.reading.reader import SURE, ModelReader

ARTIFACT = "reader"
# What the model carries as code (paths under src/): everything the pipeline imports, and nothing else.
CODE = (
    "__init__.py",
    "reading/__init__.py",
    *segmentation.MODULES,
    "reading/reader.py",
    "reading/reader_model.py",
    "reading/digit_score.py",
    "reading/shape_prior.json",
)
# The model itself, as MLflow's models-from-code wants it: a script that names the model (no pickle).
ENTRY = Path(__file__).parent / "reader_entry.py"
TOP = 3


def _bad(message: str) -> mlflow.exceptions.MlflowException:
    return mlflow.exceptions.MlflowException.invalid_parameter_value(message)


def picture_bytes(value: Any, index: int) -> bytes:  # anything a client sent
    """A picture sent as a base64 string (a data: URL too) -> its bytes."""
    if not isinstance(value, str) or not value.strip():
        kind = type(value).__name__
        raise _bad(f"picture {index}: expected a base64-encoded PNG or JPEG string, got {kind}")
    text = value.strip()
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"picture {index}: not base64 (expected a base64-encoded PNG or JPEG)") from None


# `model_input: pd.DataFrame`: what MLflow passes (a string column `image`, as the signature says, which is
# what checks the input); a hint MLflow infers no schema from, so it neither validates nor asks for hints.
# MLflow resolves `predict`'s hints at run time (typing.get_type_hints): each of them must be importable
# here, not only under TYPE_CHECKING, or MLflow falls back to reading them as strings.
class DigitReaderModel(PythonModel):
    """The pyfunc: one reading per picture, as `src.predict` gives it in JSON."""

    def load_context(self, context: PythonModelContext) -> None:
        import keras

        self.model = keras.models.load_model(context.artifacts["classifier"])
        self.model.predict_on_batch(np.zeros((1, 28, 28), np.uint8))  # build the predict function once
        self.digit_score = None
        if "digit_score" in context.artifacts:
            found = json.loads(Path(context.artifacts["digit_score"]).read_text())
            self.digit_score = DigitScore.from_metadata({"digit_score": found})

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        params = params or {}
        reader = ModelReader(self.model, float(params.get("sure", SURE)), self.digit_score)
        top = int(params.get("top", TOP))
        if not 1 <= top <= 10:
            raise _bad(f"params.top: between 1 and 10, got {top}")
        if isinstance(model_input, dict) or hasattr(model_input, "columns"):  # the `image` column
            if "image" not in model_input:
                raise _bad(f"expected a column `image`, got {list(model_input)}")
            pictures = list(model_input["image"])
        else:
            pictures = list(model_input)
        readings = []
        for i, value in enumerate(pictures):
            try:
                reading, _ = reader.read_picture(picture_bytes(value, i), f"picture {i}", top)
            except UserError as e:
                raise _bad(str(e)) from None
            readings.append(asdict(reading))
        return readings


def signature() -> ModelSignature:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "image")]),
        params=ParamSchema([ParamSpec("top", "long", TOP), ParamSpec("sure", "double", SURE)]),
    )


def log_reader(
    classifier: keras.Model, requirements: list[str], digit_score: DigitScore | None = None
) -> ModelInfo:
    """Log the reading model around the Keras model `classifier` (the one just logged) in the active run,
    with its digit score where it has one.

    The classifier goes in as one .keras file saved here: nothing is downloaded back from the store, and
    a store behind a server with logins (which checks the password on every request) gets a handful of
    files to take."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # "an input example was not provided": an example picture would be run once at every logging
        warnings.filterwarnings("ignore", message=".*input example was not provided")
        # models from code: MLflow loads this file to log it, and asks again for the type hints whose
        # absence is on purpose (the signature above says what the model takes)
        warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method")
        package = Path(tmp) / "src"
        (package / "reading").mkdir(parents=True)
        for name in CODE:
            shutil.copy2(Path(__file__).parents[1] / name, package / name)
        weights = Path(tmp) / "classifier.keras"
        classifier.save(weights)
        artifacts = {"classifier": str(weights)}
        if digit_score is not None:
            artifacts["digit_score"] = str(Path(tmp) / "digit_score.json")
            Path(artifacts["digit_score"]).write_text(json.dumps(digit_score.to_metadata()))
        return mlflow.pyfunc.log_model(
            name=ARTIFACT,
            python_model=str(ENTRY),
            artifacts=artifacts,
            code_paths=[str(package)],
            signature=signature(),
            pip_requirements=requirements,
        )
