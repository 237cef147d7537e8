"""The project's tests (a package: tf2onnx installs a top-level `tests` package of its own)."""
