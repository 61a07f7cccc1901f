"""What every WebSocket route shares: the Origin check, the client limit, the heartbeat
(ping every few seconds, close a client silent for too long), safe sends, and turning
incoming frames into JSON objects or clear errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from transport.http_errors import json_error
from transport.json_input import parse_json
from transport.security import request_token, tokens_match
from transport.services import SERVICES, Services

__all__ = [
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "CLOSE_TRY_LATER",
    "CLOSE_UNSUPPORTED",
    "Connection",
    "Incoming",
    "guarded",
    "messages",
    "now_ms",
    "open_ws",
    "release",
]


log = structlog.get_logger("transport.ws")

CLOSE_UNSUPPORTED = WSCloseCode.UNSUPPORTED_DATA  # 1003
CLOSE_POLICY = WSCloseCode.POLICY_VIOLATION  # 1008
CLOSE_TOO_BIG = WSCloseCode.MESSAGE_TOO_BIG  # 1009
CLOSE_TRY_LATER = WSCloseCode.TRY_AGAIN_LATER  # 1013


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Connection:
    """One open WebSocket: the response, a send lock, and its heartbeat task."""

    ws: web.WebSocketResponse
    route: str
    services: Services
    lock: asyncio.Lock
    authorized: bool = False  # may change state: no API token is set, or the client gave it
    heartbeat: asyncio.Task[None] | None = None

    async def send_json(self, payload: dict[str, Any]) -> None:
        await self._send(self.ws.send_str, json.dumps(payload, separators=(",", ":")))

    async def send_bytes(self, data: bytes) -> None:
        await self._send(self.ws.send_bytes, data)

    async def _send(self, send: Callable[[Any], Awaitable[None]], data: str | bytes) -> None:
        """Send unless the client has gone; one that left mid-write is not an error of ours."""
        async with self.lock:
            if not self.ws.closed:
                with contextlib.suppress(ConnectionResetError):
                    await send(data)

    async def error(self, message: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "message": message, "timestamp": now_ms(), **extra})

    async def authenticate(self, token: Any) -> bool:
        """The first-message form of the API token, ``{"type": "auth", "token": "..."}``:
        answered with ``authenticated``; a wrong token closes the connection (1008)."""
        expected = self.services.access.api_token
        if not expected or (isinstance(token, str) and tokens_match(token, expected)):
            self.authorized = True
            await self.send_json({"type": "authenticated", "timestamp": now_ms()})
            return True
        log.warning("ws.auth_refused", route=self.route)
        await self.close(CLOSE_POLICY, "wrong API token")
        return False

    async def refuse_change(self, what: str) -> None:
        await self.error(f"{what} changes state and this daemon has an API token: connect with "
                         f"'Authorization: Bearer <token>' or ?token=, or send "
                         f'{{"type": "auth", "token": "..."}} first', code="unauthorized")

    async def close(self, code: int, message: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=message.encode()[:120])


async def open_ws(request: web.Request, route: str) -> Connection | web.StreamResponse:
    services = request.app[SERVICES]  # Host and Origin were checked by transport.security
    given = request_token(request)
    if given is not None and not services.access.authorized(request):
        return json_error(401, "wrong API token")
    # aiohttp refuses a frame whose length is max_msg_size or more: one more byte, so that a
    # message of exactly max_ws_message_bytes is taken, as the docs say (second probe round)
    # permessage-deflate is off on /wss: each connection compresses its own copy of every
    # frame (a v2 frame of 10,000 nodes: 16 ms a viewer, to 0.71 of its size), where the hub
    # encodes a frame once for all; v3 is small already (docs/protocol.md).
    ws = web.WebSocketResponse(
        max_msg_size=services.server.max_ws_message_bytes + 1, autoping=True, heartbeat=None,
        compress=route != "/wss",
    )
    if not ws.can_prepare(request).ok:
        return json_error(400, f"{route} is a WebSocket endpoint; send an Upgrade request")
    await ws.prepare(request)
    conn = Connection(ws, route, services, asyncio.Lock(),
                      authorized=services.access.authorized(request))
    if len(services.websockets) >= services.server.max_clients:
        services.metrics.ws_rejected.labels(route=route, reason="max_clients").inc()
        await conn.close(CLOSE_TRY_LATER, "too many clients")
        return ws
    services.websockets.add(ws)
    services.metrics.ws_clients.labels(route=route).inc()
    conn.heartbeat = asyncio.create_task(_ping(conn))
    return conn


async def release(conn: Connection) -> None:
    if conn.heartbeat is not None:
        conn.heartbeat.cancel()
    conn.services.websockets.discard(conn.ws)
    conn.services.metrics.ws_clients.labels(route=conn.route).dec()
    if not conn.ws.closed:
        await conn.close(WSCloseCode.OK, "bye")


async def _ping(conn: Connection) -> None:
    interval = conn.services.server.ping_interval_s
    while not conn.ws.closed:
        await asyncio.sleep(interval)
        try:
            async with conn.lock:
                await conn.ws.ping()
        except Exception:  # noqa: BLE001 - the connection is going; the reader notices
            return


async def guarded(conn: Connection, handling: Awaitable[None]) -> None:
    """Handle one client message; an unexpected failure becomes an ``error`` message and a
    log line (never a closed stream or a traceback to the client)."""
    try:
        await handling
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("ws.handler_failed", route=conn.route, error=repr(exc), exc_info=True)
        await conn.error(f"could not handle that message ({type(exc).__name__})")


@dataclass(frozen=True)
class Incoming:
    """A text message parsed as a JSON object, or a binary payload."""

    data: dict[str, Any] | None = None
    binary: bytes | None = None


async def messages(conn: Connection) -> AsyncIterator[Incoming]:
    """Yield the client's messages; answer bad ones with an error (or a close) and go on."""
    ws = conn.ws
    idle = conn.services.server.idle_timeout_s
    while not ws.closed:
        try:
            msg = await ws.receive(timeout=idle)
        except TimeoutError:
            log.info("ws.idle_close", route=conn.route, idle_s=idle)
            await conn.close(CLOSE_POLICY, f"no message for {idle:g} s")
            return
        if msg.type == WSMsgType.TEXT:
            try:
                data = parse_json(msg.data)
            except ValueError as exc:
                await conn.error(f"malformed JSON: {exc}")
                continue
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                await conn.error("a message must be a JSON object with a string 'type'")
                continue
            if data["type"] == "auth":
                if not await conn.authenticate(data.get("token")):
                    return
                continue
            yield Incoming(data=data)
        elif msg.type == WSMsgType.BINARY:
            yield Incoming(binary=msg.data)
        elif msg.type == WSMsgType.ERROR:
            problem = ws.exception()
            if ws.close_code == CLOSE_TOO_BIG or "size" in str(problem).lower():
                conn.services.metrics.ws_rejected.labels(route=conn.route, reason="too_big").inc()
            log.info("ws.error", route=conn.route, error=str(problem))
            return
        else:  # CLOSE, CLOSING, CLOSED
            return
