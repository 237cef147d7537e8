"""Read the digits in pictures with a trained model.

python -m src.predict model=models:/handwritten-digits@champion images=number.png [json=true]

`images` takes a path, a glob ('scans/*.png') or a list ([a.png,b.jpg]). Each picture may hold one digit
or a number of several; it is split into digits left to right, where recognition says one digit ends
and the next begins (see src/segmentation.py).
"""

from __future__ import annotations

import glob
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, ListConfig

from src import UserError
from src.reading import SURE, ModelReader, Reading

log = logging.getLogger("src.predict")


def load_classifier(uri: str, tracking_uri: str | None = None):
    """The Keras classifier at an MLflow model URI (models:/name@alias, models:/name/3, runs:/id/model),
    from the store `tracking_uri` names (null: MLFLOW_TRACKING_URI, else ./mlruns); UserError in one
    line when the URI names no classifier or the server refuses."""
    import mlflow

    from src import access
    from src.tracking import resolve_uri

    store = resolve_uri(tracking_uri)
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    access.check_login(store)  # before the model's loading imports TensorFlow
    try:
        # what the URI names, before the seconds that loading Keras takes: a wrong URI fails fast
        flavors = mlflow.models.get_model_info(uri).flavors
        if "keras" not in flavors:
            raise UserError(
                f"model: {uri} is not a Keras classifier (its flavors: {', '.join(flavors)}): give a "
                "classifier, e.g. models:/handwritten-digits@champion (reading models are for serving)"
            )
        return mlflow.keras.load_model(uri)
    except UserError:
        raise
    except Exception as e:  # MlflowException, OSError, ...: all say "this URI does not give a model"
        refused = access.refusal(e, store)
        if refused:  # unless the server would not let us see it
            raise UserError(refused) from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"model: cannot load {uri!r} from {store}: {first}") from None


class Classifier(ModelReader):
    """A classifier (`load_classifier`) loaded once, reading pictures."""

    def __init__(self, uri: str, tracking_uri: str | None = None, sure: float = SURE):
        start = time.perf_counter()
        super().__init__(load_classifier(uri, tracking_uri), sure)
        self.uri = uri
        self.probabilities(np.zeros((1, 28, 28), np.uint8))  # build the predict function once
        log.info("loaded %s in %.1f s", uri, time.perf_counter() - start)


def expand(images) -> list[Path]:
    """Paths and globs, in the order given (each glob sorted)."""
    items = list(images) if isinstance(images, list | tuple | ListConfig) else [images]
    paths: list[Path] = []
    for item in map(str, items):
        if glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise UserError(f"images: nothing matches {item!r}")
            paths += [Path(m) for m in matches]
        else:
            paths.append(Path(item))
    return paths


def _text(path: Path, reading: Reading) -> str:
    if not reading.digits:
        return f"{path}: {reading.message}"
    lines = [
        f"{path}: {reading.text}" + ("" if reading.sure else f"  (unsure; most likely {reading.number})")
    ]
    for i, d in enumerate(reading.digits, start=1):
        alternatives = "  ".join(f"{t['digit']}: {t['probability']:.3f}" for t in d.top)
        lines.append(f"  digit {i}: {d.digit if d.sure else '?'}  ({alternatives})")
    return "\n".join(lines)


@hydra.main(config_path="../conf", config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        if cfg.images is None or cfg.images == [] or cfg.images == "":
            raise UserError("images: give a picture, a glob or a list, e.g. images=number.png")
        paths = expand(cfg.images)
        classifier = Classifier(cfg.model, cfg.tracking_uri, cfg.sure)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    results, failed = [], 0
    for path in paths:
        try:
            if not path.is_file():
                raise UserError(f"{path}: no such file")
            reading, _ = classifier.read_picture(path.read_bytes(), str(path), cfg.top)
        except UserError as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
            results.append({"image": str(path), "error": str(e)})
            continue
        results.append({"image": str(path), **asdict(reading)})
        if not cfg.json:
            print(_text(path, reading), flush=True)
    if cfg.json:
        print(json.dumps(results, indent=2))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
