"""Apps: the drawing page (FastAPI) and the MLflow tracking server and UI around the project's store."""
