"""src.predict: a number written with several MNIST digits, read by a model trained here."""

import json

import numpy as np
import pytest
from PIL import Image

from src.data import SAMPLE_PATH
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def _correctly_read_digits(
    model_uri: str, store: str, wanted: list[int], sizes: list[int]
) -> list[np.ndarray]:
    """One test digit per wanted class that the model reads right and sure on its own, as MNIST gives it
    and as it is drawn in the number (alone on the page at its size: a reading can change with the
    resizing, and by how much depends on the model, so on the machine it was trained on), and that its
    digit score finds well above its threshold."""
    import io

    from src.apps.classifier import Classifier
    from src.reading.reader import SURE

    classifier = Classifier(model_uri, store)
    sample = np.load(SAMPLE_PATH)
    x, y = sample["x_test"], sample["y_test"]
    p, scores = classifier.classify(x)
    right = (p.argmax(axis=1) == y) & (p.max(axis=1) >= SURE)
    threshold = classifier.digit_threshold
    right &= scores >= threshold + 0.5 * (1 - threshold)
    chosen = []
    for digit, size in zip(wanted, sizes, strict=True):
        for i in np.flatnonzero(right & (y == digit)):
            picture = io.BytesIO()
            Image.fromarray(_compose_number([x[i]], [size])).save(picture, format="PNG")
            reading, _ = classifier.read_picture(picture.getvalue())
            if reading.sure and reading.number == str(digit):
                chosen.append(x[i])
                break
        else:
            raise AssertionError(f"no test digit {digit} of the sample reads sure at {size} px")
    return chosen


def _compose_number(digits: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    """Black on white, with margins, each digit at its own size and height."""
    width = 60 + sum(sizes) + 25 * len(sizes)
    page = np.full((max(sizes) + 90, width), 255, np.uint8)
    left = 40
    for i, (digit, size) in enumerate(zip(digits, sizes, strict=True)):
        top = 30 + (i % 2) * 15
        ink = np.asarray(Image.fromarray(digit).resize((size, size), Image.BILINEAR))
        page[top : top + size, left : left + size] = np.minimum(
            page[top : top + size, left : left + size], 255 - ink
        )
        left += size + 25
    return page


def test_predict_reads_a_multi_digit_number(digit_model, tmp_path):
    assert digit_model["test_accuracy"] > 0.93
    number, sizes = [3, 0, 7, 5, 1, 9], [70, 110, 55, 90, 120, 80]
    digits = _correctly_read_digits(digit_model["model"], digit_model["uri"], number, sizes)
    path = tmp_path / "number.png"
    Image.fromarray(_compose_number(digits, sizes)).save(path)
    Image.fromarray(np.zeros((40, 60), np.uint8) + 255).save(tmp_path / "blank.png")

    result = run_cli(
        "src.predict", f"model={digit_model['model']}", f"images={tmp_path}/*.png", "json=true",
        env={"MLFLOW_TRACKING_URI": digit_model["uri"]},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    readings = {r["image"].rsplit("/", 1)[-1]: r for r in json.loads(result.stdout)}
    assert readings["number.png"]["number"] == "".join(map(str, number))
    assert len(readings["number.png"]["digits"]) == 6
    assert readings["number.png"]["sure"] and readings["number.png"]["text"] == "".join(map(str, number))
    assert all(d["sure"] for d in readings["number.png"]["digits"])
    top = readings["number.png"]["digits"][0]["top"]
    assert top[0]["digit"] == 3 and top[0]["probability"] >= top[1]["probability"]
    assert readings["blank.png"]["number"] == "" and "no ink" in readings["blank.png"]["message"]

    text = run_cli(
        "src.predict",
        f"model={digit_model['model']}",
        f"images=[{path}]",
        env={"MLFLOW_TRACKING_URI": digit_model["uri"]},
    )
    assert text.returncode == 0
    assert f"{path}: 307519" in text.stdout and "digit 6: 9" in text.stdout


def test_predict_answers_bad_inputs_clearly(digit_model, tmp_path):
    env = {"MLFLOW_TRACKING_URI": digit_model["uri"]}
    (tmp_path / "notes.png").write_text("not a picture")
    result = run_cli(
        "src.predict",
        f"model={digit_model['model']}",
        f"images=[{tmp_path}/notes.png,{tmp_path}/missing.png]",
        env=env,
    )
    assert result.returncode == 1
    assert "notes.png: not an image" in result.stderr and "missing.png: no such file" in result.stderr
    assert "Traceback" not in result.stderr

    result = run_cli("src.predict", "model=models:/no-such-model/1", f"images={tmp_path}/notes.png", env=env)
    assert result.returncode == 2 and "cannot load 'models:/no-such-model/1'" in result.stderr
    reader = "model=models:/handwritten-digits-reader/1"  # a reading model is served, not read with
    result = run_cli("src.predict", reader, f"images={tmp_path}/notes.png", env=env)
    assert result.returncode == 2 and "is not a Keras classifier" in result.stderr

    result = run_cli("src.predict", f"images={tmp_path}/*.jpg", env=env)
    assert result.returncode == 2 and "nothing matches" in result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sure=2", "sure: 2.0 is not a probability > 0 and <= 1"),
        ("sure=0", "sure: 0.0 is not a probability > 0 and <= 1"),
        ("top=0", "top: 0 is not a whole number >= 1"),
    ],
)
@pytest.mark.parametrize("command", ["src.predict", "src.draw"])
def test_a_reading_command_refuses_a_value_out_of_its_range_before_loading_a_model(
    command, override, message
):
    picture = ["images=docs/number.png"] if command == "src.predict" else []
    result = run_cli(command, "model=models:/no-such-model/1", *picture, override)
    assert result.returncode == 2 and message in result.stderr and "cannot load" not in result.stderr
