"""MCP sessions (``Mcp-Session-Id``): made by ``initialize``, ended by ``DELETE /mcp`` or after
``ttl_s`` without a request (:data:`HANDSHAKE_TTL_S` when it never finished its handshake).
At most :data:`MAX_SESSIONS` are open; past that ``initialize`` is refused, and no session is
ever ended to make room (found by the second probe round: 1,000 ``initialize`` calls from a
stranger used to evict every other session, open streams included). Each holds what the session negotiated, its resource
subscriptions, its requests in flight (for ``notifications/cancelled``) and the queue of
messages for its ``GET /mcp`` stream. Lives on the event loop: no locks."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ENDED", "HANDSHAKE_TTL_S", "MAX_SESSIONS", "McpSession", "SessionStore"]

MAX_SESSIONS = 1000  # open at once; another initialize is refused (503) until one ends
HANDSHAKE_TTL_S = 60.0  # a session that never sent notifications/initialized ends this soon
ENDED = "hive/session-ended"  # an outbox marker, never sent


@dataclass
class McpSession:
    id: str
    version: str
    client: dict[str, Any]
    last_seen: float
    subscriptions: set[str] = field(default_factory=set)
    in_flight: dict[Any, asyncio.Task[Any]] = field(default_factory=dict)
    outbox: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(256))
    initialized: bool = False  # it came back with a POST after initialize
    created: float = 0.0
    streaming: bool = False  # a GET stream is open (one per session)
    cancelled: set[Any] = field(default_factory=set)  # ids the client cancelled

    def push(self, message: dict[str, Any]) -> None:
        """A message for the session's GET stream; the oldest goes when nobody reads."""
        if self.outbox.full():
            self.outbox.get_nowait()
        self.outbox.put_nowait(message)

    def end(self) -> None:
        for task in self.in_flight.values():
            task.cancel()
        self.in_flight.clear()
        self.push({"method": ENDED})  # wakes the GET stream, which then ends


class SessionStore:
    def __init__(self, ttl_s: Callable[[], float], clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s  # read each time: a reload may change it
        self._clock = clock
        self._sessions: dict[str, McpSession] = {}

    def create(self, version: str, client: dict[str, Any]) -> McpSession | None:
        """A new session; None when :data:`MAX_SESSIONS` are open (none is ended for it)."""
        self.sweep()
        if len(self._sessions) >= MAX_SESSIONS:
            return None
        now = self._clock()
        session = McpSession(secrets.token_urlsafe(24), version, client, now, created=now)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> McpSession | None:
        """The live session, its idle clock reset; None when unknown or expired."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if self._expired(session, now):
            self.delete(session_id)
            return None
        session.last_seen = now
        return session

    def _expired(self, session: McpSession, now: float) -> bool:
        if not session.initialized and now - session.created > HANDSHAKE_TTL_S:
            return True
        return now - session.last_seen > self._ttl_s()

    def alive(self, session: McpSession) -> bool:
        """Whether ``session`` is still open (its idle clock untouched: an open stream is not a
        request, and the session still expires)."""
        if self._sessions.get(session.id) is not session:
            return False
        if self._expired(session, self._clock()):
            self.delete(session.id)
            return False
        return True

    def delete(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session.end()
        return session is not None

    def sweep(self) -> None:
        now = self._clock()
        for session in [s for s in self._sessions.values() if self._expired(s, now)]:
            self.delete(session.id)

    def subscribed(self, uri: str) -> list[McpSession]:
        return [s for s in self._sessions.values() if uri in s.subscriptions]

    def __len__(self) -> int:
        return len(self._sessions)
