"""A minimal client of Firefox's remote protocol, Marionette, for the page tests: Debian ships Firefox ESR but no
geckodriver, and selenium needs one. It speaks the protocol's WebDriver commands over a local socket.

    with firefox() as page:                        # headless Firefox ESR, a fresh profile; skips where missing
        page.call("WebDriver:Navigate", {"url": url})
        page.script("return document.title")

Each message is `length:json`; a command is [0, id, name, parameters] and its answer [1, id, error, result].
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
PREFERENCES = {  # a quiet profile: no update, telemetry or captive-portal requests, no first-run pages
    "browser.shell.checkDefaultBrowser": False, "app.update.enabled": False, "toolkit.telemetry.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False, "network.captive-portal-service.enabled": False,
    "browser.startup.homepage_override.mstone": "ignore", "browser.aboutwelcome.enabled": False,
}


class Marionette:
    def __init__(self, port: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=seconds)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Firefox's Marionette did not answer on port {port} within {seconds} s") \
                        from None
                time.sleep(0.3)
        self.buffer, self.id = b"", 0
        self._read()  # the server's greeting

    def _read(self) -> object:
        while b":" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        size, rest = self.buffer.split(b":", 1)
        while len(rest) < int(size):
            rest += self.sock.recv(65536)
        self.buffer = rest[int(size):]
        return json.loads(rest[:int(size)])

    def call(self, name: str, parameters: dict | None = None) -> dict:
        self.id += 1
        message = json.dumps([0, self.id, name, parameters or {}]).encode()
        self.sock.sendall(str(len(message)).encode() + b":" + message)
        _, _, error, result = self._read()
        if error:
            raise RuntimeError(f"Firefox answered {name} with {error}")
        return result

    def script(self, source: str) -> object:
        return self.call("WebDriver:ExecuteScript", {"script": source, "args": []})["value"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def firefox(width: int = 1280, height: int = 800) -> Iterator[Marionette]:
    """Headless Firefox with a fresh profile, driven over Marionette; skips the test where Firefox is missing
    (`apt-get install firefox-esr`)."""
    if FIREFOX is None:
        pytest.skip("no Firefox here: apt-get install firefox-esr")
    profile = Path(tempfile.mkdtemp(prefix="firefox-profile-"))
    port = free_port()
    prefs = {**PREFERENCES, "marionette.port": port}
    lines = [f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()]
    (profile / "user.js").write_text("".join(lines))
    process = subprocess.Popen([FIREFOX, "--headless", "--marionette", "--no-remote", "--profile", str(profile),
                                "--window-size", f"{width},{height}"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        client = Marionette(port)
        client.call("WebDriver:NewSession", {"capabilities": {}})
        yield client
        client.call("WebDriver:DeleteSession")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)
