"""The aiohttp application: middleware (JSON errors outermost, then the security rules, then the
body rules), every route module, the event-loop monitor, and WebSockets closed with 1001 at
shutdown.

Everything a handler needs is in :class:`transport.services.Services`; handlers keep no state
beyond their own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import WSCloseCode, web

from actors.health import LoopReport
from transport.body_rules import body_rules_middleware
from transport.cluster_forward import forward_to_leader_middleware
from transport.http_errors import errors_middleware, json_error
from transport.routes import (
    admin,
    api_docs,
    console,
    graph,
    health,
    mcp,
    mcp_relay,
    metrics,
    positions,
    probes,
    speech,
    swarms,
)
from transport.security import security_middleware
from transport.services import SERVICES, Services
from transport.site import KEEPALIVE_S, request_began_middleware

__all__ = ["LOOP_MONITOR", "ROUTE_MODULES", "build_app"]


ROUTE_MODULES = (console, api_docs, probes, positions, health, graph, metrics, admin, mcp_relay, swarms,
                 speech, mcp)
LOOP_MONITOR: web.AppKey[asyncio.Task[None]] = web.AppKey("loop_monitor", asyncio.Task)


def build_app(services: Services) -> web.Application:
    guard = security_middleware(
        lambda request: request.app[SERVICES].access,
        lambda status, message, _reason: json_error(status, message),
        lambda reason: services.metrics.http_refused.labels(reason=reason).inc())
    app = web.Application(
        middlewares=[request_began_middleware, errors_middleware, guard, body_rules_middleware,
                     forward_to_leader_middleware],
        client_max_size=services.server.max_body_bytes,
        # bodies are decoded by read_body, off the loop and capped, not by aiohttp as they arrive
        handler_args={"auto_decompress": False, "keepalive_timeout": KEEPALIVE_S},
    )
    app[SERVICES] = services
    for module in ROUTE_MODULES:
        module.add_routes(app)
    app.on_startup.append(_start_loop_monitor)
    app.on_shutdown.append(_close_websockets)
    return app


async def _start_loop_monitor(app: web.Application) -> None:
    app[LOOP_MONITOR] = asyncio.create_task(_monitor_loop(app[SERVICES]))


async def _monitor_loop(services: Services, period_s: float = 1.0) -> None:
    """Measure how late the loop wakes up, and report it with the request counters."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(period_s)
        lag_ms = max(0.0, (time.perf_counter() - started - period_s) * 1000)
        m = services.metrics
        m.loop_lag.set(lag_ms / 1e3)
        report = LoopReport(lag_ms, m.total, m.ok, m.failed, m.average_ms, len(services.websockets))
        if services.has("health"):
            with contextlib.suppress(Exception):
                services.address("health").tell(report)


async def _close_websockets(app: web.Application) -> None:
    """Shutdown: every open WebSocket gets 1001 (going away)."""
    services = app[SERVICES]
    monitor = app.get(LOOP_MONITOR)
    if monitor is not None:
        monitor.cancel()
    sockets = list(services.websockets)
    await asyncio.gather(
        *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
          for ws in sockets),
        return_exceptions=True,
    )
