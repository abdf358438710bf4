"""`python -m compare serve`: a local web page to draw a digit on, read by the scratch network and its torch twin;
and beside it the live playground, where both networks learn a toy dataset while you watch.

    python -m compare train --epochs 3 --save runs/mlp
    python -m compare serve --checkpoint runs/mlp                 # then open http://127.0.0.1:8000
    python -m compare serve --epochs 1                            # no checkpoint: trains the lesson's network first
    python -m compare serve --checkpoint runs/mlp --weights scratch   # the scratch weights in both implementations
    python -m compare serve --playground-only                     # http://127.0.0.1:8000/playground, no MNIST needed

The playground (http://HOST:PORT/playground, compare/web/playground_routes.py) trains on the server: each open
page has its own session, both networks stepping an epoch at a time in the one training loop, streamed to the
page as server-sent events.

The drawing (or an uploaded photo) is made into a 28x28 input the way MNIST's digits were made
(compare/data/digits.py), and the page shows it with both networks' probabilities, predictions, hidden
activations and their largest difference (compare/web/predict.py), with the reason for its size: two
networks trained separately drift apart in float32; with `--weights scratch` (or `torch`) both sides
hold the same weights and differ by rounding alone. Any model family with a checkpoint
can be served. The server binds 127.0.0.1 unless --host says otherwise; a port already in use is
refused at once, before anything is trained or loaded. `--dry-run` loads or trains the networks,
reads one test digit and stops instead of serving (with --playground-only: one epoch of a default session).
Needs the extra `serve`.
"""

from __future__ import annotations

import argparse
import errno
import socket

from compare import web
from compare.base.errors import UsageError
from compare.data.mnist import load_dataset
from compare.options.command import Command
from compare.options.groups import DATA, DEVICE, DTYPE, EPOCHS, REPORT, SEED
from compare.training.config import Config
from compare.web.playground import PlaygroundSession, Settings
from compare.web.predict import WEIGHTS, DigitReader, reader_from_checkpoint, reader_from_training


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="a folder written by `train --save DIR` (default: none: train the lesson's network first)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 opens the page to the network (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    p.add_argument("--weights", choices=WEIGHTS, default="own",
                   help="whose trained weights each side holds: its own, or the scratch (or torch) network's in "
                        "both, so that any difference left is the implementations' alone (default: own)")
    p.add_argument("--playground-only", action="store_true",
                   help="serve the live playground alone: no digit page, so nothing is trained or loaded first and "
                        "no MNIST is needed (default: off)")
    p.add_argument("--dry-run", action="store_true",
                   help="load or train the networks, read one test digit, and stop instead of serving (default: off)")


def check(args: argparse.Namespace) -> None:
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
    if args.playground_only and args.checkpoint:
        raise UsageError("--playground-only serves no digit page: leave out --checkpoint")
    if not args.dry_run:
        web.require_web()  # before any training
        require_free_port(args.host, args.port)


def require_free_port(host: str, port: int) -> None:
    """Bind host:port and let it go again, so that a busy port is refused now, not after the training."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise UsageError(f"--host {host} is not an address this machine knows; try --host 127.0.0.1") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a closing socket is no obstacle
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host} is already in use (another server?); choose another "
                                 f"with --port, e.g. --port {port + 1 if port < 65535 else 8000}") from None
            raise UsageError(f"cannot listen on {host}:{port} ({error.strerror}); choose another --host or "
                             "--port") from None


def make_reader(config: Config) -> DigitReader:
    if config.extra["checkpoint"]:
        return reader_from_checkpoint(config.extra["checkpoint"], config.data_root, config.device,
                                      config.extra["weights"])
    print(f"No --checkpoint: training {config.model.family} on {config.dataset} first ({config.epochs} epoch(s), "
          "scratch and torch in lockstep)")
    data = load_dataset(config.dataset, config.data_root, dtype=config.torch_dtype, device=config.device)
    return reader_from_training(config, data, config.extra["weights"])


def run(config: Config, data: None = None) -> dict:
    host, port = config.extra["host"], config.extra["port"]
    if config.extra["playground_only"] and config.extra["dry_run"]:
        session = PlaygroundSession(Settings())  # the page's default network, one epoch, and stop
        summary = session.step(1)
        print(f"A default playground session ({session.settings.dataset}, hidden {list(session.settings.hidden)}, "
              f"{session.settings.dtype}) took one epoch: test loss scratch {summary['scratch']['test_loss']:.6f}, "
              f"torch {summary['torch']['test_loss']:.6f}; largest loss difference "
              f"{summary['max_loss_difference']:.1e}")
        return dict(summary=summary, agreement=dict(passed=summary["max_loss_difference"] <= 1e-9))
    if config.extra["playground_only"]:
        print(f"Open http://{host}:{port}/playground (Ctrl-C stops)")
        counts = web.serve(None, host, port)
        print(f"Playground sessions made: {counts['playground_sessions']}")
        return dict(counts, agreement=dict(passed=True))
    reader = make_reader(config)
    info = reader.info()
    print(f"Serving {info['description']} ({info['source']}); test accuracy "
          + ", ".join(f"{side} {acc:.2%}" for side, acc in info["accuracies"].items()))
    if config.extra["dry_run"]:
        digit = load_dataset(reader.dataset, config.data_root).x_test[0]  # a real test image, normalized
        result = reader.read(digit * reader.std + reader.mean)
        print(f"A test digit reads as {result['scratch']['predicted']} (scratch) and {result['torch']['predicted']} "
              f"(torch); largest difference {result['max_difference']:.3e} ({info['difference']['case']})")
        counts = dict(predictions=1, disagreements=int(not result["agree"]))
    else:
        print(f"Open http://{host}:{port} (the digit page) or http://{host}:{port}/playground (Ctrl-C stops)")
        counts = web.serve(reader, host, port)
    print(f"Predictions made: {counts['predictions']}, scratch and torch disagreeing on {counts['disagreements']}")
    return dict(info=info, **counts, agreement=dict(passed=counts["disagreements"] == 0))


COMMAND = Command(
    name="serve",
    help="a local web page: draw a digit and watch the scratch network and its torch twin read it",
    run=run,
    groups=(DATA, EPOCHS, SEED, DTYPE, DEVICE, REPORT),
    add_arguments=add_arguments,
    config_keys=("checkpoint", "host", "port", "weights", "playground_only", "dry_run"),
    needs_data=False,
    defaults={"epochs": 1},
    check=check,
)
