"""How many updates a second the live playground streams for its default network, measured on this machine.

    python scripts/playground_rate.py                 # 10 s of the stream, then the time of each part in-process
    python scripts/playground_rate.py --seconds 30

Starts `python -m compare serve --playground-only` on 127.0.0.1 (a free port), makes a session of the page's
default settings (circles; features x1, x2; 4,2 tanh; batch 10; lr 0.03; float64), reads its server-sent
events for --seconds and counts them: each update is one epoch of both networks (25 steps on 250 training
points), their losses on both sets, both heatmaps, every neuron's thumbnail and every weight, sent as one frame.
The stream sends at most 60 a second (compare/web/playground_routes.py); the in-process timing below it says
what one update costs without that cap or HTTP. Needs the extra `serve` (and httpx, in the extra `dev`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_rate(seconds: float) -> tuple[int, float, dict]:
    import httpx

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "compare", "serve", "--playground-only", "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/playground", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("error: the server did not start within 60 s")
                time.sleep(0.3)
        with httpx.Client(base_url=url, timeout=60) as http:
            key = http.post("/api/playground", json={}).json()["id"]
            frames, last, start = 0, {}, None
            with http.stream("GET", f"/api/playground/{key}/stream") as events:
                for line in events.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    if start is None:  # timed from the first frame: the connection's start is not an update
                        start = time.perf_counter()
                        continue
                    frames += 1
                    last = json.loads(line[len("data: "):])
                    if time.perf_counter() - start >= seconds:
                        break
            elapsed = time.perf_counter() - start
            http.delete(f"/api/playground/{key}")
        return frames, elapsed, last
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def in_process(updates: int = 100) -> dict[str, float]:
    import torch

    from compare.web.playground import PlaygroundSession, Settings

    torch.set_num_threads(1)
    session = PlaygroundSession(Settings())
    timings = {"epoch": 0.0, "frame": 0.0, "json": 0.0}
    for _ in range(updates):
        t0 = time.perf_counter()
        session.step(1)
        t1 = time.perf_counter()
        frame = session.frame()
        t2 = time.perf_counter()
        json.dumps(frame)
        t3 = time.perf_counter()
        timings["epoch"] += t1 - t0
        timings["frame"] += t2 - t1
        timings["json"] += t3 - t2
    return {k: 1000 * v / updates for k, v in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to read the stream (default: 10)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    frames, elapsed, last = stream_rate(args.seconds)
    print(f"Stream of the default network (circles; x1, x2; 4,2 tanh; batch 10; lr 0.03; float64): {frames} updates "
          f"in {elapsed:.1f} s: {frames / elapsed:.1f} updates per second (epoch {last['step']}, test accuracy "
          f"scratch {last['scratch']['test_accuracy']:.1%}, torch {last['torch']['test_accuracy']:.1%}, largest loss "
          f"difference {last['max_loss_difference']:.1e})")
    ms = in_process()
    total = sum(ms.values())
    print(f"One update in-process: {total:.1f} ms ({1000 / total:.0f} per second without the stream): the epoch "
          f"{ms['epoch']:.1f} ms (25 steps of both networks, then their losses), the frame {ms['frame']:.1f} ms "
          f"(heatmaps, thumbnails, weights), JSON {ms['json']:.1f} ms")


if __name__ == "__main__":
    main()
