"""The aiohttp application: routes, JSON errors, limits. Handlers translate and forward.

Everything a handler needs is in :class:`Services` (the tree's addresses, the frame hub, the
metrics); handlers keep no state beyond their own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import WSCloseCode, web
from aiohttp.web_protocol import RequestPayloadError

from hive.config import ServerConfig
from supervisor import Address, SupervisionTree
from transport.fanout import FrameHub
from transport.metrics import Metrics
from transport.relay_policy import DEFAULT_RELAY_TOOLS, RelayPolicy
from transport.security import AccessPolicy, security_middleware

__all__ = [
    "CLIENT_GONE",
    "LOOP_MONITOR",
    "SERVICES",
    "Services",
    "build_app",
    "errors_middleware",
    "json_error",
]


log = structlog.get_logger("transport")

# The status counted (not sent: nobody is there) for a request whose client left mid-way;
# nginx's "client closed request", so that it never shows up as one of our 500s.
CLIENT_GONE = 499


@dataclass
class Services:
    tree: SupervisionTree
    server: ServerConfig
    admin_token: str
    hub: FrameHub
    metrics: Metrics
    actors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # [actors.*] settings
    access: AccessPolicy = field(default_factory=AccessPolicy)
    relay_policy: RelayPolicy = field(default_factory=lambda: RelayPolicy.of(DEFAULT_RELAY_TOOLS))
    websockets: weakref.WeakSet[web.WebSocketResponse] = field(default_factory=weakref.WeakSet)
    started_at: float = field(default_factory=time.monotonic)

    def address(self, name: str) -> Address:
        return self.tree.address(f"{self.tree.root_path}/{name}")

    def has(self, name: str) -> bool:
        return f"{self.tree.root_path}/{name}" in self.tree.paths()


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, "status": status, **extra}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """JSON for every error, counters for every request, never a traceback to a client."""
    metrics = request.app[SERVICES].metrics
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400:
            raise
        reason = exc.reason if exc.status != 404 else f"no route for {request.method} {request.path}"
        if exc.status == 413:
            reason = f"request body too large (limit {request.app[SERVICES].server.max_body_bytes} bytes)"
        return json_error(exc.status, reason)
    except asyncio.CancelledError:  # the client left (or the server is stopping)
        status = CLIENT_GONE
        raise
    except RequestPayloadError as exc:  # a body that cannot be read: bad Content-Encoding, ...
        status = 400
        return json_error(400, f"request body could not be read: {exc}")
    except ConnectionResetError:  # the client left mid-request: nobody to answer, not our fault
        status = CLIENT_GONE
        log.info("http.client_gone", path=request.path)
        return json_error(400, "client closed the connection")
    except Exception as exc:
        log.error("http.unhandled", path=request.path, error=repr(exc), exc_info=True)
        return json_error(500, "internal error")
    finally:
        if not request.path.startswith(("/wss", "/ws/")):
            metrics.observe_request(status, time.perf_counter() - started)


def build_app(services: Services) -> web.Application:
    from transport import (
        admin,
        agents_routes,
        graph_routes,
        health_routes,
        mcp_relay,
        metrics_route,
        positions,
        speech_ws,
    )

    guard = security_middleware(
        lambda request: request.app[SERVICES].access,
        lambda status, message, _reason: json_error(status, message),
        lambda reason: services.metrics.http_refused.labels(reason=reason).inc())
    app = web.Application(
        middlewares=[errors_middleware, guard], client_max_size=services.server.max_body_bytes
    )
    app[SERVICES] = services
    positions.add_routes(app)
    health_routes.add_routes(app)
    graph_routes.add_routes(app)
    metrics_route.add_routes(app)
    admin.add_routes(app)
    mcp_relay.add_routes(app)
    agents_routes.add_routes(app)
    speech_ws.add_routes(app)
    app.on_startup.append(_start_loop_monitor)
    app.on_shutdown.append(_close_websockets)
    return app


LOOP_MONITOR: web.AppKey[asyncio.Task[None]] = web.AppKey("loop_monitor", asyncio.Task)


async def _start_loop_monitor(app: web.Application) -> None:
    app[LOOP_MONITOR] = asyncio.create_task(_monitor_loop(app[SERVICES]))


async def _monitor_loop(services: Services, period_s: float = 1.0) -> None:
    """Measure how late the loop wakes up, and report it with the request counters."""
    from actors.health import LoopReport

    while True:
        started = time.perf_counter()
        await asyncio.sleep(period_s)
        lag_ms = max(0.0, (time.perf_counter() - started - period_s) * 1000)
        m = services.metrics
        m.loop_lag_ms.set(lag_ms)
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
