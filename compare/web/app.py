"""The FastAPI application behind `python -m compare serve`: the digit page and its prediction route, and the live
playground (its page and API: compare/web/playground_routes.py).

    GET  /              the digit page (static/index.html); without a digit reader, a redirect to /playground
    GET  /api/info      what is served: the network, where its weights come from, both test accuracies
    POST /api/predict   multipart field `image`: a PNG of the canvas, or any image file; answers JSON with
                        the 28x28 input made from it and both networks' readings (compare/web/predict.py)

A bad upload is a 4xx answer with a one-line `detail`, and the server keeps serving: not an image (415),
larger than MAX_UPLOAD_BYTES or MAX_PIXELS (413), an empty canvas or a blank page (422).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from compare.data.digits import EmptyDrawingError, ink_from_grey, mnist_style
from compare.web.playground_routes import add_playground
from compare.web.predict import DigitReader
from compare.web.sessions import SessionPool

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 5 * 2**20  # a phone photo fits; anything larger is refused before it is decoded
MAX_PIXELS = 4096 * 4096  # a small file can still decode to a huge image (a "decompression bomb")


def decode_image(data: bytes) -> Tensor:
    """Bytes of an image file -> its grey levels [H, W] as uint8; HTTPException 4xx when it is not usable."""
    if not data:
        raise HTTPException(422, "the upload is empty: send an image file in the field `image`")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise HTTPException(413, f"the image is {image.width}x{image.height} pixels; at most "
                                         f"{MAX_PIXELS:,} pixels are read")
            if image.mode in ("RGBA", "LA") or "transparency" in image.info:
                # a transparent canvas: strokes are opaque, paper is transparent; put it on black, as MNIST
                background = Image.new("RGBA", image.size, (0, 0, 0, 255))
                image = Image.alpha_composite(background, image.convert("RGBA"))
            grey = image.convert("L")
            return torch.frombuffer(bytearray(grey.tobytes()), dtype=torch.uint8).reshape(grey.height, grey.width)
    except Image.DecompressionBombError:
        raise HTTPException(413, f"the image has too many pixels; at most {MAX_PIXELS:,} are read") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise HTTPException(415, f"the upload is not an image that can be read ({type(error).__name__}); "
                                 "send a PNG or JPEG") from None


def create_app(reader: DigitReader | None, playground: SessionPool | None = None) -> FastAPI:
    """The digit page with `reader` (None: none), and the live playground with `playground`'s sessions."""
    app = FastAPI(title="scratch vs torch: draw a digit, watch a playground", docs_url=None, redoc_url=None)
    app.state.counts = dict(predictions=0, disagreements=0)
    if playground is not None:
        add_playground(app, playground)
    if reader is None:
        @app.get("/", include_in_schema=False)
        def no_digits() -> RedirectResponse:
            return RedirectResponse("/playground")

        return app

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/info")
    def info() -> dict:
        return reader.info()

    @app.post("/api/predict")
    async def predict(image: UploadFile = File(...)) -> dict:  # noqa: B008 (FastAPI's way to declare a field)
        data = await image.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"the upload is larger than {MAX_UPLOAD_BYTES // 2**20} MiB; send a smaller "
                                     "image")
        grey = decode_image(data)
        try:
            digit = mnist_style(ink_from_grey(grey))
        except EmptyDrawingError as error:
            raise HTTPException(422, str(error)) from None
        result = await run_in_threadpool(reader.read, digit)
        app.state.counts["predictions"] += 1
        app.state.counts["disagreements"] += not result["agree"]
        return result

    return app
