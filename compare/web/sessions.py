"""The live playground's sessions: one per open page, bounded in number and in idle time.

    >>> pool = SessionPool(max_sessions=32, idle_seconds=600)
    >>> key, session = pool.create(settings)        # SessionLimitError (HTTP 429) when max_sessions are open
    >>> pool.get(key)                               # SessionMissingError (HTTP 404) once deleted or idle too long
    >>> pool.delete(key)

A session that no request has touched for `idle_seconds` is closed at the next look at the pool (any create,
get or count), so a page that vanished without its DELETE (a crash, a lost network) frees its place. Together
with the bounds of compare/web/playground.py (points, layers, neurons) this bounds the server's memory.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from compare.web.playground import PlaygroundSession, Settings

MAX_SESSIONS = 32
IDLE_SECONDS = 600.0


class SessionLimitError(RuntimeError):
    """Every place is taken (HTTP 429)."""


class SessionMissingError(KeyError):
    """No such session: never made, deleted, or closed when idle (HTTP 404)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class SessionPool:
    def __init__(self, max_sessions: int = MAX_SESSIONS, idle_seconds: float = IDLE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_sessions, self.idle_seconds, self.clock = max_sessions, idle_seconds, clock
        self._sessions: dict[str, tuple[PlaygroundSession, float]] = {}
        self._lock = threading.Lock()
        self.created = self.closed_idle = 0

    def _reap(self) -> None:
        now = self.clock()
        idle = [k for k, (_, seen) in self._sessions.items() if now - seen > self.idle_seconds]
        for key in idle:
            del self._sessions[key]
            self.closed_idle += 1

    def create(self, settings: Settings) -> tuple[str, PlaygroundSession]:
        with self._lock:
            self._reap()
            if len(self._sessions) >= self.max_sessions:
                raise SessionLimitError(
                    f"{self.max_sessions} playground sessions are open, the most this server keeps: close a "
                    f"playground page, or retry once one has been idle for {self.idle_seconds:g} s")
        session = PlaygroundSession(settings)  # outside the lock: building the networks takes milliseconds
        with self._lock:
            if len(self._sessions) >= self.max_sessions:  # another request took the last place meanwhile
                raise SessionLimitError(f"{self.max_sessions} playground sessions are open, the most this server "
                                        "keeps: close a playground page and retry")
            key = secrets.token_urlsafe(9)
            self._sessions[key] = (session, self.clock())
            self.created += 1
        return key, session

    def get(self, key: str) -> PlaygroundSession:
        """The session, its idle clock restarted; SessionMissingError when there is none."""
        with self._lock:
            self._reap()
            if key not in self._sessions:
                raise SessionMissingError(
                    f"no playground session {key!r}: it was deleted, or closed after {self.idle_seconds:g} s without "
                    "a request; create one with POST /api/playground")
            session = self._sessions[key][0]
            self._sessions[key] = (session, self.clock())
            return session

    def delete(self, key: str) -> None:
        self.get(key)
        with self._lock:
            self._sessions.pop(key, None)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._sessions

    def __len__(self) -> int:
        with self._lock:
            self._reap()
            return len(self._sessions)
