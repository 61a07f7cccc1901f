"""``GET /api/health`` and ``/ws/hybrid-health``: the health actor's snapshot, over HTTP and
as a stream (``initial_status``, then ``status_update`` on change and every few seconds), and
on the stream a ``session_update`` whenever a swarm's status changes (pushed by the hive-mind
actor, newest state per swarm)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

from aiohttp import web

from actors.health import GetHealth, HealthSnapshot
from actors.hive_mind.messages import Session, SessionUpdate
from actors.messages import Subscribe, Unsubscribe
from supervisor import SupervisionError
from transport.services import SERVICES, Services
from transport.ws import (
    CLOSE_UNSUPPORTED,
    Connection,
    guarded,
    messages,
    now_ms,
    open_ws,
    release,
)

__all__ = ["TOPICS", "UPDATE_EVERY_S", "add_routes", "health", "hybrid_health_ws", "snapshot"]


UPDATE_EVERY_S = 5.0
TOPICS = ("system_status", "docker_health", "mcp_health", "active_sessions", "performance",
          "cluster", "actors", "components")
_keys = itertools.count(1)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/health", health)
    app.router.add_get("/ws/hybrid-health", hybrid_health_ws)


async def snapshot(services: Services, refresh: bool = False) -> HealthSnapshot:
    snap: HealthSnapshot = await services.address("health").ask_async(GetHealth(refresh), timeout=5)
    return snap


def _fallback(services: Services, reason: str) -> dict[str, Any]:
    """When the health actor itself is down, say so rather than fail."""
    return {"system_status": "degraded", "reason": reason, "docker_health": "unknown",
            "mcp_health": "unknown", "active_sessions": [], "container_health": {},
            "actors": services.tree.describe()}


async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        snap = await snapshot(services, refresh=request.query.get("refresh") == "true")
    except SupervisionError as exc:
        return web.json_response(_fallback(services, f"health actor unavailable: {exc}"))
    status = 503 if snap.system_status == "critical" else 200
    return web.json_response(dict(snap.body), status=status)


async def hybrid_health_ws(request: web.Request) -> web.StreamResponse:
    opened = await open_ws(request, "/ws/hybrid-health")
    if not isinstance(opened, Connection):
        return opened
    conn = opened
    services = conn.services
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    key = f"ws-health-{next(_keys)}"
    with contextlib.suppress(SupervisionError):
        services.address("health").tell(
            Subscribe(key, lambda _snap: loop.call_soon_threadsafe(changed.set)))
    pusher = asyncio.create_task(_push_updates(conn, changed))
    sessions: dict[str, Session] = {}  # the newest state of each swarm not yet sent
    session_changed = asyncio.Event()

    def on_session(update: SessionUpdate) -> None:  # on the hive-mind actor's thread
        if conn.ws.closed:  # raising drops this subscriber, also when no Unsubscribe got there
            raise ConnectionResetError("the health stream's client has gone")
        loop.call_soon_threadsafe(_take, sessions, session_changed, update.session)

    with contextlib.suppress(SupervisionError):
        services.address("hive_mind").tell(Subscribe(key, on_session))
    session_pusher = asyncio.create_task(_push_sessions(conn, sessions, session_changed))
    try:
        await _send_status(conn, "initial_status")
        async for incoming in messages(conn):
            if incoming.binary is not None:
                await conn.close(CLOSE_UNSUPPORTED, "binary frames are not accepted here")
                break
            assert incoming.data is not None
            kind = incoming.data["type"]
            if kind == "ping":
                await conn.send_json({"type": "pong",
                                      "timestamp": incoming.data.get("timestamp", now_ms())})
            elif kind == "request_status":
                options = incoming.data.get("data") or {}
                if not isinstance(options, dict):
                    await conn.error("request_status: 'data' must be an object")
                    continue
                refresh = bool(options.get("force_refresh") or incoming.data.get("force_refresh"))
                await guarded(conn, _send_status(conn, "status_update", refresh))
            elif kind in ("subscribe", "unsubscribe"):
                await conn.send_json({"type": f"{kind}d", "timestamp": now_ms(),
                                      "data": {"topics": list(TOPICS)}})
            else:
                await conn.error(f"unknown message type {kind!r}",
                                 known=["ping", "request_status", "subscribe", "unsubscribe"])
    finally:
        pusher.cancel()
        session_pusher.cancel()
        for actor in ("health", "hive_mind"):
            with contextlib.suppress(SupervisionError):
                services.address(actor).tell(Unsubscribe(key))
        await release(conn)
    return conn.ws


async def _send_status(conn: Connection, kind: str, refresh: bool = False) -> None:
    try:
        snap = await snapshot(conn.services, refresh)
        data = dict(snap.body)
    except SupervisionError as exc:
        data = _fallback(conn.services, f"health actor unavailable: {exc}")
    await conn.send_json({"type": kind, "timestamp": now_ms(), "data": data})


async def _push_updates(conn: Connection, changed: asyncio.Event) -> None:
    while not conn.ws.closed:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), UPDATE_EVERY_S)
        changed.clear()
        if conn.ws.closed:
            return
        with contextlib.suppress(Exception):
            await _send_status(conn, "status_update")



def _take(pending: dict[str, Session], changed: asyncio.Event, session: Session) -> None:
    pending[session.id] = session  # a newer state of the same swarm replaces the older one
    changed.set()


async def _push_sessions(conn: Connection, pending: dict[str, Session],
                         changed: asyncio.Event) -> None:
    """``session_update`` for each swarm whose status changed, newest state only."""
    while not conn.ws.closed:
        await changed.wait()
        changed.clear()
        while pending:
            session = pending.pop(next(iter(pending)))
            await conn.send_json({"type": "session_update", "timestamp": now_ms(),
                                  "data": session.to_json()})
