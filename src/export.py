"""Export a registered classifier for programs that do not run MLflow, each export checked for parity.

python -m src.export model=models:/handwritten-digits@champion format=saved_model|onnx|tflite out=<dir>

- saved_model: a TensorFlow SavedModel in `out` itself; its `serving_default` signature takes uint8
  `digits` (N, 28, 28) and has one output, `output_0`: the probabilities (N, 10). TF Serving wants it in
  a numbered version folder: out=serving/handwritten-digits/1.
- onnx: out/model.onnx (tf2onnx, the converter Keras uses; `pip install '.[export]'`), input `digits`.
- tflite: out/model.tflite (float) and out/model_int8.tflite (weights and activations quantised to int8,
  calibrated on training digits; uint8 digits in, float probabilities out).

An export computes in float32, whatever precision the model trained in: a model trained in mixed
precision (bfloat16 or float16) is rebuilt in float32 with the same weights, and each file is run on
`parity_digits` MNIST test digits beside that float32 Keras model, so the check measures the export, not
the precision. A float export must read the same digit on at least 99.9% of them and differ by less than
1e-4 in any probability; the int8 one may lose at most 0.3 points of accuracy. The report
(out/parity.json) says both figures per file, and the accuracy of the model as registered, in its own
precision, beside them. It and the files are logged to the run the model came from (exports/<format>/),
with metrics export.<format>.agreement, .max_diff and .accuracy (export.tflite_int8.* for the int8 file).
An export that fails parity exits 1, unlogged.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from src import UserError, cli, config
from src.models.exports import (
    CALIBRATION_DIGITS,
    FORMATS,
    Parity,
    check,
    float32_model,
    save_onnx,
    save_saved_model,
    save_tflite,
    serving_model,
)

log = logging.getLogger("src.export")


def log_export(run_id: str, fmt: str, out: Path, files: list[Path], report: list[Parity]) -> None:
    """The export and its parity report as artifacts (exports/<fmt>/) and metrics of the run that
    logged the model."""
    from src.tracking import records

    if fmt == "saved_model":
        artifacts = [(out, "exports/saved_model")]
    else:
        artifacts = [(path, f"exports/{fmt}") for path in [*files, out / "parity.json"]]
    metrics: dict[str, float] = {}
    for p in report:
        key = fmt + ("_int8" if "int8" in p.file else "")  # export.tflite_int8.accuracy, ...
        for name in ("agreement", "max_diff", "accuracy"):
            metrics[f"export.{key}.{name}"] = getattr(p, name)
    records.log_to(run_id, artifacts, metrics)


def export(cfg: DictConfig) -> tuple[Path, list[Parity], str | None]:
    from src.data import SAMPLE_PATH, read_npz
    from src.tracking import load_classifier, records

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
        "compared_in": "float32",
        "rebuilt_in_float32": rebuilt,
        # how often the float32 computation reads the same digit as the model in its own precision
        "registered_agreement": float((reference.argmax(1) == as_registered).mean()),
        "parity": [asdict(p) for p in report],
    }
    (out / "parity.json").write_text(json.dumps(summary, indent=2))
    run_id = records.run_of_model(cfg.model) if cfg.log and all(p.passed for p in report) else None
    if run_id:
        log_export(run_id, cfg.format, out, files, report)
    return out, report, run_id


config.register_schemas()


@hydra.main(config_path="../conf/commands", config_name="export", version_base="1.3")
@cli.command()
def main(cfg: DictConfig) -> None:
    out, report, run_id = export(cfg)
    for p in report:
        verdict = "ok" if p.passed else "FAILED"
        where = out / p.file if p.file != out.name else out
        print(
            f"{where}: the same digit as Keras (both in float32) on {p.agreement:.1%} of {p.digits} test "
            f"digits, max difference {p.max_diff:.2e}, accuracy {p.accuracy:.4f} (Keras "
            f"{p.keras_accuracy:.4f}); "
            f"{p.tolerance}: {verdict}"
        )
    if not all(p.passed for p in report):
        print("error: an export does not match the Keras model; nothing was logged", file=sys.stderr)
        sys.exit(1)
    if run_id:
        print(f"logged to run {run_id} (artifacts exports/{cfg.format}/)")
    elif cfg.log:
        print(f"not logged: {cfg.model} was not logged by a run")


if __name__ == "__main__":
    cli.help_if_asked(__doc__, "commands/export")
    main()
