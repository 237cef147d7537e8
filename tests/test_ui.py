"""The MLflow UI of `make ui`, driven in a real headless Chromium."""

import mlflow
import pytest

from tests.conftest import SCREENSHOTS, free_port, serving, use_store

pytestmark = pytest.mark.slow


def test_ui_shows_the_sweep_and_a_childs_confusion_matrix(smoke_sweep, browser):
    use_store(smoke_sweep["uri"])
    experiment = mlflow.get_experiment_by_name("handwritten-digits")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    parent = next(r for r in runs if r.data.tags.get("sweep") == "true")
    child = next(r for r in runs if r.info.run_name == "vgg19")

    port = free_port()
    with serving(
        ["make", "ui", f"PORT={port}"], port, "/health", env={"MLFLOW_TRACKING_URI": smoke_sweep["uri"]}
    ):
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        base = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}"
        page.goto(f"{base}/runs")
        sweep_link = page.get_by_text(parent.info.run_name, exact=True)
        sweep_link.wait_for(timeout=60_000)
        # the children are nested under the parent: expand it
        sweep_cell = sweep_link.locator("xpath=ancestor::*[@role='presentation'][1]")
        sweep_cell.locator("button").first.click()
        for name in ("vgg16", "vgg19", "resnet50"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "ui-sweep.png")

        page.goto(f"{base}/runs/{child.info.run_id}/artifacts/confusion_matrix/test.png")
        page.get_by_text("confusion_matrix/test.png").first.wait_for(timeout=60_000)
        image = page.locator("img[src^='blob:']").first
        image.wait_for(timeout=30_000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 300", arg=image.element_handle())
        page.screenshot(path=SCREENSHOTS / "ui-confusion-matrix.png")
        page.close()
