"""A drawing page: write digits with the mouse, a finger or a pen and see what the model reads.

python -m src.draw [model=models:/handwritten-digits@champion] [port=8000] [corrections=DIR]

One process, the model loaded once at start (src/apps/drawing_page.py is the page and its endpoint).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from src import cli, config

config.register_schemas()


@hydra.main(config_path="../conf/commands", config_name="draw", version_base="1.3")
@cli.command()
def main(cfg: DictConfig) -> None:
    import uvicorn

    from src.apps.classifier import Classifier
    from src.apps.corrections import Corrections
    from src.apps.drawing_page import create_app

    config.check(cfg, config.READING_SCHEMA)
    classifier = Classifier(cfg.model, cfg.tracking_uri, cfg.sure)
    # relative to where the command runs (Hydra does not change directory)
    corrections = Corrections(cfg.corrections) if cfg.corrections else None
    app = create_app(
        classifier, max_bytes=int(cfg.max_upload_mb * 1_000_000), top=cfg.top, corrections=corrections
    )
    print(f"drawing page for {cfg.model}: http://{cfg.host}:{cfg.port}  (Ctrl-C stops it)", flush=True)
    if corrections:
        print(f"corrections saved to {corrections.root} ({corrections.count()} so far)", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")


if __name__ == "__main__":
    cli.help_if_asked(__doc__, "commands/draw")
    main()
