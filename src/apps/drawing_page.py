"""The drawing page: write digits with the mouse, a finger or a pen and see what the model reads.

Served by FastAPI and uvicorn, which MLflow already installs. After each stroke the page posts the canvas
as a PNG together with the strokes that drew it (JSON: {"picture": PNG in base64, "strokes": [[[x, y],
...], ...], "pen": width}); the server reads it with the same pipeline as `src.predict`, each stroke its
own blob even where it touches the next digit's, and answers with the number, each digit's 28x28 crop
and its top classes. A bare PNG or JPEG body is read as a picture alone, as `src.predict` reads files.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from src import UserError
from src.apps.corrections import Corrections

if TYPE_CHECKING:
    import numpy as np

    from src.apps.classifier import Classifier
    from src.reading.reader import Reading

log = logging.getLogger("src.draw")
PAGE = Path(__file__).parent / "draw.html"


def _png(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def create_app(
    classifier: Classifier, max_bytes: int = 5_000_000, top: int = 3, corrections: Corrections | None = None
) -> FastAPI:
    """The page and its JSON endpoints around a loaded `src.apps.classifier.Classifier`; with
    `corrections`, a misread drawing can be saved there under its right number (POST /correct)."""

    app = FastAPI(title="handwritten-digits drawing page", docs_url=None, redoc_url=None)
    page = PAGE.read_text().replace("{{MODEL}}", classifier.uri)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": classifier.uri}

    @app.get("/corrections")
    def corrections_saved() -> dict:
        return {"saved": corrections.count() if corrections else None}

    @app.post("/correct")
    async def correct(request: Request) -> JSONResponse:
        """A drawing read again, and saved with its crops under the right number ({"label": "31"})."""
        if corrections is None:
            return _error(404, "corrections are not saved by this server (draw.corrections=null)")
        body = await _received(request, max_bytes)
        if isinstance(body, JSONResponse):
            return body
        try:
            picture, strokes, pen = drawing(body, "application/json")  # the page's drawing, and
            label = json.loads(body).get("label")  # the right number typed under its reading
            reading, crops = await run_in_threadpool(
                classifier.read_picture, picture, "the picture", top, strokes, pen
            )
            entry = await run_in_threadpool(
                corrections.save, picture, [c.image for c in crops], reading.number, label, classifier.uri
            )
        except UserError as e:
            return _error(400, str(e))
        return JSONResponse({"saved": entry["count"], "label": entry["label"], "id": entry["id"]})

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        body = await _received(request, max_bytes)
        if isinstance(body, JSONResponse):
            return body
        start = time.perf_counter()
        try:
            picture, strokes, pen = drawing(bytes(body), request.headers.get("content-type", ""))
            reading, crops = await run_in_threadpool(
                classifier.read_picture, picture, "the picture", top, strokes, pen
            )
        except UserError as e:
            return _error(_status(e), str(e))
        return JSONResponse(_reading_json(reading, crops, start))

    return app


async def _received(request: Request, max_bytes: int) -> bytes | JSONResponse:
    """The request's body, or the error to answer: too large (413, by its header or as it arrives), empty."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        return _error(413, f"the picture is larger than {max_bytes // 1_000_000} MB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            return _error(413, f"the picture is larger than {max_bytes // 1_000_000} MB")
    if not body:
        return _error(400, "empty request: post a PNG or JPEG picture")
    return bytes(body)


def _status(error: UserError) -> int:
    """The HTTP status of a picture that cannot be read: too large, not an image, or otherwise wrong."""
    return 413 if "too large" in str(error) else 415 if "not an image" in str(error) else 400


def _reading_json(reading: Reading, crops: list, start: float) -> dict:
    """/predict's answer: the reading, each digit with its doubts and its crop, and the time it took."""
    return {
        "number": reading.number,
        "text": reading.text,
        "sure": reading.sure,
        "message": reading.message,
        "digits": [
            {
                "digit": d.digit,
                "probability": d.probability,
                "sure": d.sure,
                "digit_score": d.digit_score,
                "looks_like_digit": d.looks_like_digit,
                "count_clear": d.count_clear,
                "height_share": d.height_share,
                "height_clear": d.height_clear,
                "top": d.top,
                "box": d.box,
                "crop": _png(c.image),
            }
            for d, c in zip(reading.digits, crops, strict=True)
        ],
        "milliseconds": round(1000 * (time.perf_counter() - start), 1),
    }


MAX_STROKES = 2000  # strokes in one drawing, and points in all of them
MAX_POINTS = 200_000


def drawing(body: bytes, content_type: str) -> tuple[bytes, list | None, float]:
    """A request's picture, and the strokes that drew it where it sends them: (picture, strokes or None,
    pen width). A JSON body is the page's {"picture", "strokes", "pen"}; any other body is the picture."""
    if not content_type.startswith("application/json"):
        return body, None, 0.0
    try:
        sent = json.loads(body)
        picture = base64.b64decode(str(sent["picture"]).split(",")[-1], validate=True)
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise UserError(
            'a JSON drawing is {"picture": a PNG in base64, "strokes": [[[x, y], ...], ...], "pen": width}'
        ) from None
    strokes, pen = sent.get("strokes"), sent.get("pen", 18)
    if strokes is None:
        return picture, None, 0.0
    points = 0
    valid = isinstance(strokes, list) and len(strokes) <= MAX_STROKES
    valid = valid and isinstance(pen, (int, float)) and 0 < pen <= 500
    for stroke in strokes if valid else []:
        valid = isinstance(stroke, list) and len(stroke) > 0
        for point in stroke if valid else []:
            valid = valid and isinstance(point, list) and len(point) == 2
            valid = valid and all(isinstance(v, (int, float)) and math.isfinite(v) for v in point)
        points += len(stroke) if valid else 0
        if not valid or points > MAX_POINTS:
            break
    if not valid or points > MAX_POINTS:
        raise UserError(
            f"strokes: a list of at most {MAX_STROKES} strokes, each a list of [x, y] points (at most "
            f"{MAX_POINTS} in all), and pen a width in pixels"
        )
    return picture, strokes, float(pen)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
