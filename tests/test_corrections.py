"""Corrections from the drawing page: a real Chromium draws, types the right number and saves; many saves
at once lose nothing; a label of letters or of another length is refused; the folder trains."""

import base64
import io
import json
import multiprocessing
import sys
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import mlflow
import numpy as np
import pytest
from PIL import Image

from src import UserError
from src.apps.corrections import INDEX, Corrections, check_label
from src.data import SAMPLE_PATH, read_npz
from src.reading.folder import list_pictures
from src.train import train
from tests.conftest import free_port, serving


@pytest.mark.parametrize(
    "label,read,message",
    [
        ("ab", "12", r"digits only, 0-9 \(got 'ab'\)"),
        ("1a", "12", "digits only"),
        ("", "7", "digits only"),
        ("123", "12", "the right number 123 has 3 digits, the drawing was read as 2 \\(12\\)"),
        ("7", "", "was read as 0 \\(none\\)"),
    ],
)
def test_a_label_of_letters_or_of_another_length_is_refused_in_one_line(label, read, message):
    with pytest.raises(UserError, match=message) as refused:
        check_label(label, read)
    assert "\n" not in str(refused.value)
    assert check_label(" 31 ", "38") == "31"


def _number_picture(digits: list[int], seed: int) -> tuple[bytes, str]:
    """A picture of a number written with MNIST sample digits, dark on light, the digits well apart."""
    arrays = read_npz(SAMPLE_PATH)
    rng = np.random.default_rng(seed)
    canvas = np.full((60, 40 * len(digits) + 20), 255, np.uint8)
    for k, digit in enumerate(digits):
        choices = np.flatnonzero(arrays["y_train"] == digit)
        canvas[16:44, 20 + 40 * k : 48 + 40 * k] = 255 - arrays["x_train"][rng.choice(choices)]
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    return buffer.getvalue(), "".join(map(str, digits))


def _save_in_process(root: str, seed: int) -> str:
    """A save from another process (another server on the same folder)."""
    picture, label = _number_picture([seed % 10, (seed + 3) % 10], seed)
    crops = [np.full((28, 28), 40 * k, np.uint8) for k in range(len(label))]
    return Corrections(root).save(picture, crops, label, label, "models:/other-server/1")["id"]


def test_saves_from_threads_and_processes_at_once_lose_nothing(tmp_path):
    root = tmp_path / "corrections"
    corrections = Corrections(root)

    def save(seed: int) -> str:
        picture, label = _number_picture([seed % 10, (seed + 1) % 10, (seed + 5) % 10], seed)
        crops = [np.full((28, 28), 10 * k, np.uint8) for k in range(3)]
        return corrections.save(picture, crops, label, label, "models:/handwritten-digits/1")["id"]

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as processes, ThreadPoolExecutor(8) as threads:
        elsewhere = [processes.submit(_save_in_process, str(root), seed) for seed in range(6)]
        here = list(threads.map(save, range(24)))
        ids = here + [f.result() for f in elsewhere]
    lines = [json.loads(line) for line in (root / INDEX).read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(ids) and len(set(ids)) == 30
    for line in lines:
        assert len(line["files"]) == 1 + len(line["label"])
        for name in line["files"]:
            Image.open(root / name).verify()  # whole pictures, every one
    assert not list(root.rglob("*.tmp"))
    parts = list_pictures(root)  # the data=folder layout: the crops, under their digits
    assert len(parts["pool"]) == 24 * 3 + 6 * 2 and corrections.count() == 30


def test_a_save_that_fails_leaves_nothing_behind(tmp_path, monkeypatch):
    corrections = Corrections(tmp_path / "corrections")
    picture, label = _number_picture([1, 2], 0)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("src.apps.corrections.json.dumps", broken)
    with pytest.raises(OSError):
        corrections.save(picture, [np.zeros((28, 28), np.uint8)] * 2, label, label, "m")
    assert not [p for p in (tmp_path / "corrections").rglob("*") if p.is_file() and p.name != ".lock"]
    assert corrections.count() == 0


@pytest.fixture(scope="module")
def correcting_server(digit_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("page") / "corrections"
    port = free_port()
    command = [
        sys.executable, "-m", "src.draw", f"model={digit_model['model']}", f"port={port}",
        f"corrections={root}",
    ]  # fmt: skip
    with serving(command, port, "/health", env={"MLFLOW_TRACKING_URI": digit_model["uri"]}):
        yield {"url": f"http://127.0.0.1:{port}", "root": root, "model": digit_model["model"]}


def _correct(url: str, picture: bytes, label: str) -> tuple[int, dict]:
    body = json.dumps({"picture": base64.b64encode(picture).decode(), "label": label}).encode()
    request = urllib.request.Request(
        f"{url}/correct", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.slow
def test_the_page_saves_a_correction_typed_under_a_drawing(correcting_server, browser):
    root = correcting_server["root"]
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(correcting_server["url"])
    page.wait_for_function("document.getElementById('saved').textContent.includes('saved')", timeout=20_000)
    before = Corrections(root).count()
    assert page.inner_text("#saved") == f"{before} correction{'' if before == 1 else 's'} saved"
    assert page.locator("#correction").is_hidden()  # nothing read yet, nothing to correct
    pad = page.locator("#pad").bounding_box()
    sx, sy = pad["width"] / 840, pad["height"] / 320
    page.mouse.move(pad["x"] + 150 * sx, pad["y"] + 60 * sy)
    page.mouse.down()
    page.mouse.move(pad["x"] + 150 * sx, pad["y"] + 260 * sy, steps=8)
    page.mouse.up()
    page.wait_for_function("(document.getElementById('number').dataset.number || '').length == 1")
    read = page.get_attribute("#number", "data-number")
    assert page.locator("#correction").is_visible()

    for wrong, message in (("ab", "digits only"), ("17", "has 2 digits, the drawing was read as 1")):
        page.fill("#right", wrong)
        page.click("#save")
        page.wait_for_function(
            f"document.getElementById('saved').textContent.includes({json.dumps(message)})", timeout=20_000
        )
        assert page.locator("#saved.error").count() == 1
    assert Corrections(root).count() == before  # refused: nothing saved

    page.fill("#right", "7")
    page.click("#save")
    page.wait_for_function("document.getElementById('saved').textContent.startsWith('saved as 7')")
    assert (
        page.inner_text("#saved") == f"saved as 7; {before + 1} correction{'' if before == 0 else 's'} saved"
    )
    entry = json.loads((root / INDEX).read_text().splitlines()[-1])
    assert entry["label"] == "7" and entry["read"] == read and entry["model"] == correcting_server["model"]
    assert entry["time"] and entry["files"] == [f"_drawings/{entry['id']}.png", f"7/{entry['id']}-0.png"]
    crop = np.asarray(Image.open(root / entry["files"][1]))
    assert crop.shape == (28, 28) and crop.max() > 200  # the crop the page showed, white on black
    drawing = Image.open(root / entry["files"][0])
    assert drawing.size == (840, 320)
    page.close()


@pytest.mark.slow
def test_corrections_saved_at_once_through_the_server_are_all_kept_and_train(
    correcting_server, store, compose_cfg
):
    url, root = correcting_server["url"], correcting_server["root"]
    before = Corrections(root).count()
    numbers = [[d, (d + 4) % 10] for d in range(10)] * 2
    drawings = [_number_picture(number, seed) for seed, number in enumerate(numbers)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda d: _correct(url, *d), drawings))
    assert [status for status, _ in answers] == [200] * len(drawings), answers
    assert Corrections(root).count() == before + len(drawings)
    assert sorted(a["saved"] for _, a in answers)[-1] == before + len(drawings)

    status, answer = _correct(url, drawings[0][0], "123")
    assert status == 400 and "has 3 digits, the drawing was read as 2" in answer["error"]
    assert Corrections(root).count() == before + len(drawings)

    scores = train(
        compose_cfg(
            "+experiment=fast_baseline", "data=folder", f"data.path={root}", "data.mix_mnist=0.5",
            f"data.mnist_path={SAMPLE_PATH}", "training.epochs=1", "training.verbose=0",
            "training.precision=float32", "tracking.reader_model=null", "training.digit_score.sample=0",
        )
    )  # fmt: skip
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FINISHED" and run.data.tags["data.source"].startswith(str(root))
    own = int(run.data.tags["data.train_size"]) // 2  # half of the training split is the corrections'
    assert own >= 30 and 0 <= scores["test_accuracy"] <= 1
