"""The live playground's HTTP API and page, added to the app of `python -m compare serve` (compare/web/app.py).

    GET    /playground                     the page (static/playground.html, .js, .css)
    POST   /api/playground                 a config (compare/web/playground.py, Settings) -> {"id": ...}
    GET    /api/playground/{id}            its settings, epoch, loss curve so far, and the points (x1, x2, label)
    POST   /api/playground/{id}/step       {"steps": N}, 1 to 1000 epochs -> step, scratch/torch train_loss,
                                           test_loss (and test_accuracy), max_loss_difference,
                                           max_parameter_difference, diverged
    GET    /api/playground/{id}/heatmap    both networks' outputs on a 50x50 grid of the plane
    GET    /api/playground/{id}/frame      what the page draws: summary, heatmaps and neuron thumbnails (bytes),
                                           weights of both sides
    GET    /api/playground/{id}/stream     server-sent events: one frame per epoch of training, until the page
                                           closes the stream (pause, or the page closed)
    PATCH  /api/playground/{id}            {"lr": x}: the one setting that changes without a reset, as in Playground
    DELETE /api/playground/{id}

Errors are one line in `detail`: a bad config or body 422 naming the field, no such session (deleted, or idle
too long) 404, every session place taken 429, a second stream of one session 409. Training runs in the
server's thread pool, one call at a time per session; a losses' inf or NaN is sent as null (with diverged).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from compare.web.playground import MAX_STEPS, PlaygroundSession, Settings, SettingsError
from compare.web.sessions import SessionLimitError, SessionMissingError, SessionPool

STATIC = Path(__file__).parent / "static"
MAX_UPDATES_PER_SECOND = 60  # a stream sends at most this many frames a second (a screen's refresh rate)


def finite(value):
    """A JSON-safe copy: inf and NaN (of a diverged run) become None, which JSON can carry."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


async def json_body(request: Request) -> object:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPException(422, "body: not JSON; send a JSON object, e.g. {\"dataset\": \"spiral\"}") from None


def add_playground(app: FastAPI, pool: SessionPool) -> None:
    """The page and its API, on `app`; `pool` holds the sessions."""
    app.state.playground = pool
    app.state.stopping = lambda: False  # compare.web.serve replaces it: True once the server is shutting down
    streaming: set[str] = set()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def lookup(key: str) -> PlaygroundSession:
        try:
            return pool.get(key)
        except SessionMissingError as error:
            raise HTTPException(404, str(error)) from None

    @app.get("/playground", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "playground.html")

    @app.post("/api/playground")
    async def create(request: Request) -> dict:
        try:
            settings = Settings.from_json(await json_body(request))
            key, _ = await run_in_threadpool(pool.create, settings)
        except SettingsError as error:
            raise HTTPException(422, str(error)) from None
        except SessionLimitError as error:
            raise HTTPException(429, str(error)) from None
        return {"id": key}

    @app.get("/api/playground/{key}")
    async def describe(key: str) -> dict:
        return finite(await run_in_threadpool(lookup(key).description))

    @app.post("/api/playground/{key}/step")
    async def step(key: str, request: Request) -> dict:
        session = lookup(key)
        body = await json_body(request)
        steps = body.get("steps", 1) if isinstance(body, dict) else None
        if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
            raise HTTPException(422, f"steps: a whole number of epochs from 1 to {MAX_STEPS}; got {steps!r}")
        return finite(await run_in_threadpool(session.step, steps))

    @app.get("/api/playground/{key}/heatmap")
    async def heatmap(key: str) -> dict:
        return finite(await run_in_threadpool(lookup(key).heatmap))

    @app.get("/api/playground/{key}/frame")
    async def frame(key: str) -> dict:
        return finite(await run_in_threadpool(lookup(key).frame))

    @app.patch("/api/playground/{key}")
    async def change(key: str, request: Request) -> dict:
        session = lookup(key)
        body = await json_body(request)
        if not isinstance(body, dict) or set(body) != {"lr"}:
            named = next(iter(sorted(set(body) - {"lr"})), "body") if isinstance(body, dict) and body else "body"
            raise HTTPException(422, f"{named}: only the learning rate changes without a reset, send {{\"lr\": x}}; "
                                     "for any other change create a new session (POST /api/playground)")
        try:
            lr = Settings.from_json({**session.settings.to_json(), "lr": body["lr"]}).lr
        except SettingsError as error:
            raise HTTPException(422, str(error)) from None
        await run_in_threadpool(session.set_learning_rate, lr)
        return {"lr": lr}

    @app.delete("/api/playground/{key}")
    def delete(key: str) -> dict:
        try:
            pool.delete(key)
        except SessionMissingError as error:
            raise HTTPException(404, str(error)) from None
        return {"deleted": key}

    @app.get("/api/playground/{key}/stream")
    async def stream(key: str, request: Request) -> StreamingResponse:
        session = lookup(key)
        if key in streaming:
            raise HTTPException(409, "this session is already playing in another stream; pause that one first")
        streaming.add(key)

        def advance() -> dict:
            session.step(1)
            return finite(session.frame())

        async def events():
            try:
                while key in pool and not app.state.stopping() and not await request.is_disconnected():
                    started = time.monotonic()
                    update = await run_in_threadpool(advance)
                    lookup(key)  # a playing page is not idle
                    yield f"data: {json.dumps(update)}\n\n"
                    if update["diverged"]:
                        break
                    await asyncio.sleep(max(0.0, 1 / MAX_UPDATES_PER_SECOND - (time.monotonic() - started)))
            except HTTPException:  # deleted while playing
                pass
            finally:
                streaming.discard(key)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
