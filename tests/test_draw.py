"""The drawing page: a real server, a real headless Chromium drawing with the mouse, and bad requests."""

import base64
import io
import json
import math
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SCREENSHOTS, free_port, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def draw_server(digit_model):
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "src.draw",
        f"model={digit_model['model']}",
        f"port={port}",
        "max_upload_mb=1",
    ]
    with serving(command, port, "/health", env={"MLFLOW_TRACKING_URI": digit_model["uri"]}):
        yield f"http://127.0.0.1:{port}"


def _post(url: str, body: bytes, content_type: str = "image/png") -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/predict", data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _declare_oversized(url: str, size: int) -> tuple[int, dict]:
    """Announce a body over the limit: the server refuses it before reading a byte of it."""
    import http.client

    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/predict")
    connection.putheader("Content-Type", "image/png")
    connection.putheader("Content-Length", str(size))
    connection.endheaders()
    response = connection.getresponse()
    answer = (response.status, json.loads(response.read()))
    connection.close()
    return answer


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_drawing_with_the_mouse_shows_the_digits(draw_server, browser):
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    posted = []  # what the page sends: its picture and the strokes that drew it
    page.on("request", lambda r: posted.append(r.post_data_json) if r.url.endswith("/predict") else None)
    page.goto(draw_server)
    pad = page.locator("#pad").bounding_box()
    sx, sy = pad["width"] / 840, pad["height"] / 320

    def stroke(points):
        page.mouse.move(pad["x"] + points[0][0] * sx, pad["y"] + points[0][1] * sy)
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(pad["x"] + x * sx, pad["y"] + y * sy, steps=3)
        page.mouse.up()

    def number_has(length):
        """The digits read (the most likely ones, sure or not), once there are `length` of them; the
        text shown marks each unsure digit with "?", as its card does."""
        page.wait_for_function(
            f"(document.getElementById('number').dataset.number || '').length == {length}", timeout=20_000
        )
        number = page.get_attribute("#number", "data-number")
        unsure = [
            card.get_attribute("class").endswith("unsure") for card in page.locator("#digits .digit").all()
        ]
        shown = "".join("?" if doubt else digit for digit, doubt in zip(number, unsure, strict=True))
        assert page.inner_text("#number") == shown
        return number

    stroke([(150, 60), (150, 260)])  # a one
    assert number_has(1) == "1"
    circle = [
        (300 + 55 * math.sin(t * math.pi / 10), 160 - 95 * math.cos(t * math.pi / 10)) for t in range(21)
    ]
    stroke(circle)  # a zero
    assert number_has(2) == "10"
    assert len(posted[-1]["strokes"]) == 2 and posted[-1]["pen"] == 18
    assert posted[-1]["picture"].startswith("data:image/png;base64,")
    assert page.locator("#digits img").count() == 2
    assert "%" in page.inner_text("#digits")  # top probabilities per digit
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "draw.png", full_page=True)

    page.click("#undo")
    assert number_has(1) == "1"
    page.click("#clear")
    assert page.inner_text("#number") == ""
    assert page.locator("#digits .digit").count() == 0
    page.close()


def test_bad_requests_get_clear_answers_and_the_server_keeps_serving(draw_server):
    status, answer = _post(draw_server, _png(np.full((200, 400), 255)))
    assert status == 200 and answer["digits"] == [] and "no ink" in answer["message"]  # blank canvas
    status, answer = _post(draw_server, b"GIF89a but not really")
    assert status == 415 and "not an image" in answer["error"]
    status, answer = _post(draw_server, b"")
    assert status == 400 and "empty request" in answer["error"]
    status, answer = _declare_oversized(draw_server, 1_500_000)
    assert status == 413 and "larger than 1 MB" in answer["error"]
    huge = io.BytesIO()
    Image.new("L", (9000, 5000), 255).save(huge, format="PNG")  # 45 megapixels in a few kB
    status, answer = _post(draw_server, huge.getvalue())
    assert status == 413 and "too large (9000x5000" in answer["error"]

    page = np.full((120, 120), 255)
    page[20:100, 55:65] = 0
    status, answer = _post(draw_server, _png(page))
    assert status == 200 and answer["number"] == "1"
    assert (
        answer["text"] == ("1" if answer["sure"] else "?") and answer["digits"][0]["sure"] == answer["sure"]
    )
    # each digit says why it may be unsure: the digit score, the count of digits, its height in the line
    one = answer["digits"][0]
    assert one["looks_like_digit"] in (True, False) and one["count_clear"] in (True, False)
    assert one["height_share"] == 1.0 and one["height_clear"] is True  # a digit alone is its line's tallest
    # the page's own request: the picture in JSON with its strokes; a malformed one gets one line
    drawing = {"picture": base64.b64encode(_png(page)).decode(), "strokes": [[[60, 20], [60, 99]]], "pen": 10}
    status, answer = _post(draw_server, json.dumps(drawing).encode(), "application/json")
    assert status == 200 and answer["number"] == "1"
    status, answer = _post(draw_server, b'{"strokes": []}', "application/json")
    assert status == 400 and "JSON drawing" in answer["error"]
    wrong = json.dumps({**drawing, "strokes": [[1, 2]]}).encode()  # points, not strokes of points
    status, answer = _post(draw_server, wrong, "application/json")
    assert status == 400 and answer["error"].startswith("strokes:")
    with urllib.request.urlopen(f"{draw_server}/health", timeout=10) as response:
        assert json.loads(response.read())["status"] == "ok"
