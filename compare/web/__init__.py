"""The pages of `python -m compare serve`: draw a digit and watch both networks read it; the live playground.

    python -m compare train --save runs/mlp && python -m compare serve --checkpoint runs/mlp   # http://127.0.0.1:8000
    python -m compare serve --playground-only                     # http://127.0.0.1:8000/playground

compare/web/predict.py is the reader (both trained networks read one digit), compare/web/app.py the FastAPI
application (routes, upload checks), static/index.html the page (a canvas, an upload button, the 28x28 input
and both networks' answers). The playground: compare/web/playground.py (a session: both networks learning a
toy dataset), sessions.py (their bounded pool), playground_routes.py (its API), static/playground.* (the page).
FastAPI, uvicorn, python-multipart and Pillow are the optional extra `serve`
(`pip install -e '.[serve]'`); they are imported only when a page is served, so every other command works
without them.
"""

from __future__ import annotations

import importlib.util

from compare.base.errors import UsageError
from compare.web.predict import DigitReader

INSTALL_HINT = "the web page needs FastAPI, uvicorn, python-multipart and Pillow: pip install -e '.[serve]'"


def require_web() -> None:
    """Fail early, before any training, with the install hint when the serve extra is missing."""
    # python-multipart is imported as python_multipart since 0.0.13, as multipart before
    missing = [name for name in ("fastapi", "uvicorn", "PIL") if importlib.util.find_spec(name) is None]
    if importlib.util.find_spec("python_multipart") is None and importlib.util.find_spec("multipart") is None:
        missing.append("python-multipart")
    if missing:
        raise UsageError(f"{INSTALL_HINT} (missing: {', '.join(missing)})")


def serve(reader: DigitReader | None, host: str, port: int) -> dict[str, int]:
    """Serve the digit page (with `reader`; none without) and the live playground until Ctrl-C; returns how many
    predictions were made, how many had the two networks disagreeing, and how many playground sessions were made."""
    require_web()
    import torch
    import uvicorn  # the optional extra: imported only here, after the check above

    from compare.web.app import create_app
    from compare.web.sessions import SessionPool

    # The networks are tiny: one thread per training (each session trains in its own thread of the server's pool)
    # is faster than sharing every small matrix product between threads, and sessions do not fight over cores.
    torch.set_num_threads(1)
    pool = SessionPool()
    app = create_app(reader, pool)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5))
    # A playing page's stream never ends by itself, and a graceful shutdown waits for open connections: the
    # streams end at their next update once Ctrl-C has asked the server to stop.
    app.state.stopping = lambda: server.should_exit
    try:
        server.run()  # returns after a graceful shutdown on Ctrl-C
    except KeyboardInterrupt:  # uvicorn raises the Ctrl-C it handled again, once it has shut down; as uvicorn.run
        pass
    return dict(app.state.counts, playground_sessions=pool.created)
