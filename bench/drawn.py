"""Reading numbers drawn with the mouse on the drawing page (`src.draw`, a real server) in headless
Chromium: the page's own answer after the last stroke."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bench.runs import ROOT

CHROMIUM = "/usr/bin/chromium"


def drawing_page(model_uri: str, store: str) -> tuple[subprocess.Popen, int]:
    """`python -m src.draw` for `model_uri` on a free port, once it answers; the server and its port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "src.draw", f"model={model_uri}", f"port={port}"],
        cwd=ROOT,
        env={**os.environ, "MLFLOW_TRACKING_URI": store},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError("the drawing page did not start") from None
                time.sleep(0.5)
    except BaseException:
        server.terminate()
        server.wait()
        raise
    return server, port


def draw_number(
    page: Any, pad: dict, digits: list[int], rng: np.random.Generator, sent: list, answered: dict
) -> dict:
    """One number drawn stroke by stroke on the pad; the page's answer to its last stroke."""
    from src.data.strokes import number_strokes

    sx, sy = pad["width"] / 840, pad["height"] / 320
    page.click("#clear")
    strokes = number_strokes(digits, rng)
    before = len(sent)
    for points in strokes:
        page.mouse.move(pad["x"] + points[0][0] * sx, pad["y"] + points[0][1] * sy)
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(pad["x"] + x * sx, pad["y"] + y * sy, steps=2)
        page.mouse.up()
    # the page reads after every stroke and shows the answer to the last one
    while len(sent) < before + len(strokes) or sent[-1] not in answered:
        page.wait_for_timeout(10)
    return answered[sent[-1]].json()


def draw_numbers(port: int, count: int) -> list[tuple[str, dict]]:
    """`count` numbers of 3 to 5 digits drawn in headless Chromium: each number and the page's answer."""
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(0)
    answers = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        sent: list = []  # the page's requests to read its drawing, and the answers by request
        answered: dict = {}
        page.on("request", lambda r: sent.append(r) if r.url.endswith("/predict") else None)
        page.on("response", lambda r: answered.update({r.request: r}) if r.url.endswith("/predict") else None)
        page.goto(f"http://127.0.0.1:{port}")
        pad = page.locator("#pad").bounding_box()
        assert pad is not None
        for _ in range(count):
            digits = [int(d) for d in rng.integers(0, 10, int(rng.integers(3, 6)))]
            reading = draw_number(page, dict(pad), digits, rng, sent, answered)
            answers.append(("".join(map(str, digits)), reading))
        browser.close()
    return answers


def drawn_numbers(model_uri: str, store: str, count: int) -> dict:
    """Numbers of 3 to 5 digits drawn as mouse strokes on the drawing page (`src.draw`, a real server) in
    headless Chromium (src/data/strokes.py: hand-made shapes at random sizes, slants and spacing): the
    page's own answer after the last stroke, per number."""
    if not Path(CHROMIUM).exists():
        return {"reading_drawn": f"not measured: no Chromium at {CHROMIUM} (make install)"}
    server, port = drawing_page(model_uri, store)
    try:
        answers = draw_numbers(port, count)
    finally:
        server.terminate()
        server.wait()
    exact = right = total = sure = sure_wrong = 0
    for truth, reading in answers:
        exact += reading["number"] == truth
        if len(reading["number"]) == len(truth):
            right += sum(a == b for a, b in zip(reading["number"], truth, strict=True))
        total += len(truth)
        sure += bool(reading["sure"])
        sure_wrong += bool(reading["sure"]) and reading["number"] != truth
    return {
        "reading_drawn_numbers": count,
        "reading_drawn_exact": exact / count,
        "reading_drawn_digits_right": right / total,
        "reading_drawn_sure": sure / count,
        "reading_drawn_sure_wrong": sure_wrong / max(sure, 1),
    }
