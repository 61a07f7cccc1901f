"""A TCP site that takes no more connections than the open-file limit leaves room for.

A WebSocket client over ``max_clients`` is refused politely (1013), which needs its connection
for a moment; connections past ``max_connections`` are reset as they are accepted, so that a
crowd of clients can never take the descriptors the daemon itself needs (a swarm record, an MCP
server's pipes, a log file). aiohttp has no such limit: this replaces ``TCPSite.start`` only to
put a counting protocol factory in front of aiohttp's own (aiohttp is pinned below 4 for it).

A connection must also finish its first request's headers within ``header_timeout_s`` (the
second probe round: aiohttp's only clock for them is its keep-alive timeout, 3630 s by default
in 3.14, so headers sent a byte a second held a connection for an hour, and enough such
connections fill ``max_connections``, after which every later client is reset). After a request,
aiohttp's keep-alive timeout (:data:`KEEPALIVE_S`, set in ``transport/app.py``) closes a
connection whose next request does not arrive whole.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = ["BACKLOG", "KEEPALIVE_S", "CappedSite", "request_began_middleware"]

BACKLOG = 64
KEEPALIVE_S = 75.0  # an idle kept-alive connection (or one whose next request dawdles) closes
# connections whose first request's headers arrived (the rest are closed at their deadline)
_BEGAN: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()


@web.middleware
async def request_began_middleware(request: web.Request,
                                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                                   ) -> web.StreamResponse:
    """The first thing a request passes: its headers are in, so its connection keeps going."""
    if request.transport is not None:
        _BEGAN.add(request.transport)
    return await handler(request)




class _Reset(asyncio.Protocol):
    """Accepted past the cap: closed at once (a reset), holding its descriptor for no time."""

    def __init__(self, on_reset: Callable[[], None]) -> None:
        self._on_reset = on_reset

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.abort()
        self._on_reset()


class CappedSite(web.TCPSite):
    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int,
                 header_timeout_s: float = 20.0, on_reset: Callable[[], None] = lambda: None) -> None:
        # asyncio accepts up to ``backlog`` connections in one go before any reaches the
        # factory: the burst must fit in the reserve too
        super().__init__(runner, host, port, backlog=BACKLOG)
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self._on_reset = on_reset
        # connections still owing their first request's headers, and when they are due; one
        # sweep a second (not a timer each, which would hold every handler for the timeout)
        self._waiting: dict[RequestHandler, float] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def _factory(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        if len(server.connections) >= self.max_connections:
            return _Reset(self._on_reset)
        handler = server()
        self._waiting[handler] = asyncio.get_running_loop().time() + self.header_timeout_s
        return handler

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.header_timeout_s / 4))
            now = loop.time()
            for handler, due in list(self._waiting.items()):
                transport = handler.transport
                if transport is None and now < due:
                    continue  # not connected yet
                if transport is None or transport in _BEGAN or transport.is_closing():
                    del self._waiting[handler]  # gone, or its headers came in time
                elif now >= due:
                    del self._waiting[handler]
                    transport.close()

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await super().stop()

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        self._server = await asyncio.get_running_loop().create_server(
            self._factory, self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
        self._sweeper = asyncio.create_task(self._sweep())
