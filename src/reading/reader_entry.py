"""The reading model's entry point for MLflow's models-from-code: MLflow runs this file to load the model
(src/reading/reader_model.py says what the model is)."""

import mlflow

from src.reading.reader_model import DigitReaderModel

mlflow.models.set_model(DigitReaderModel())
