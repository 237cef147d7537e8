"""Read the digits in pictures with a trained model.

python -m src.predict model=models:/handwritten-digits@champion images=number.png [json=true]

`images` takes a path, a glob ('scans/*.png') or a list ([a.png,b.jpg]). Each picture may hold one digit
or a number of several; it is split into digits left to right, where recognition says one digit ends
and the next begins (see src/reading/segmentation.py).
"""

from __future__ import annotations

import glob
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import hydra
from omegaconf import DictConfig, ListConfig

from src import UserError, cli, config
from src.reading.reader import Reading

log = logging.getLogger("src.predict")


def expand(images: str | list | tuple | ListConfig) -> list[Path]:
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
    doubt = "" if reading.sure else f"  (unsure; most likely {reading.number})"
    lines = [f"{path}: {reading.text}{doubt}" + (f"  {reading.message}" if reading.message else "")]
    for i, d in enumerate(reading.digits, start=1):
        alternatives = "  ".join(f"{t['digit']}: {t['probability']:.3f}" for t in d.top)
        unlike = "" if d.looks_like_digit else f"  may not be a digit (digit score {d.digit_score:.2f})"
        count = "" if d.count_clear else "  may be more or fewer digits here"
        small = "" if d.height_clear else f"  much smaller than the rest ({d.height_share:.0%} as tall)"
        lines.append(f"  digit {i}: {d.digit if d.sure else '?'}  ({alternatives}){unlike}{count}{small}")
    return "\n".join(lines)


config.register_schemas()


@hydra.main(config_path="../conf/commands", config_name="predict", version_base="1.3")
@cli.command()
def main(cfg: DictConfig) -> None:
    from src.apps.classifier import Classifier

    config.check(cfg, config.READING_SCHEMA)
    if cfg.images is None or cfg.images == [] or cfg.images == "":
        raise UserError("images: give a picture, a glob or a list, e.g. images=number.png")
    paths = expand(cfg.images)
    classifier = Classifier(cfg.model, cfg.tracking_uri, cfg.sure)
    results, failed = [], 0
    for path in paths:
        try:
            if not path.is_file():
                raise UserError(f"{path}: no such file")
            reading, _ = classifier.read_picture(path.read_bytes(), str(path), cfg.top)
        except UserError as e:  # this picture is not read; the others are
            failed += 1
            cli.report(e)
            results.append({"image": str(path), "error": str(e)})
            continue
        results.append({"image": str(path), **asdict(reading)})
        if not cfg.json:
            print(_text(path, reading), flush=True)
    if cfg.json:
        print(json.dumps(results, indent=2))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    cli.help_if_asked(__doc__, "commands/predict")
    main()
