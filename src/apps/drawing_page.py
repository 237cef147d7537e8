"""The drawing page: write digits with the mouse, a finger or a pen and see what the model reads.

Served by FastAPI and uvicorn, which MLflow already installs. The page posts the canvas as a PNG after
each stroke; the server reads it with the same pipeline as `src.predict` and answers with the number,
each digit's 28x28 crop and its top classes.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from src import UserError

log = logging.getLogger("src.draw")
PAGE = Path(__file__).parent / "draw.html"


def _png(image) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def create_app(classifier, max_bytes: int = 5_000_000, top: int = 3) -> FastAPI:
    """The page and its JSON endpoint around a loaded `src.apps.classifier.Classifier`."""

    app = FastAPI(title="handwritten-digits drawing page", docs_url=None, redoc_url=None)
    page = PAGE.read_text().replace("{{MODEL}}", classifier.uri)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": classifier.uri}

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
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
        start = time.perf_counter()
        try:
            reading, crops = await run_in_threadpool(classifier.read_picture, bytes(body), "the picture", top)
        except UserError as e:
            status = 413 if "too large" in str(e) else 415 if "not an image" in str(e) else 400
            return _error(status, str(e))
        return JSONResponse(
            {
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
                        "top": d.top,
                        "box": d.box,
                        "crop": _png(c.image),
                    }
                    for d, c in zip(reading.digits, crops, strict=True)
                ],
                "milliseconds": round(1000 * (time.perf_counter() - start), 1),
            }
        )

    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
