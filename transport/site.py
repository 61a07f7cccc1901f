"""A TCP site that takes no more connections than the open-file limit leaves room for.

A WebSocket client over ``max_clients`` is refused politely (1013), which needs its connection
for a moment; connections past ``max_connections`` are reset as they are accepted, so that a
crowd of clients can never take the descriptors the daemon itself needs (a swarm record, an MCP
server's pipes, a log file). aiohttp has no such limit: this replaces ``TCPSite.start`` only to
put a counting protocol factory in front of aiohttp's own (aiohttp is pinned below 4 for it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

__all__ = ["BACKLOG", "CappedSite"]

BACKLOG = 64


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
                 on_reset: Callable[[], None] = lambda: None) -> None:
        # asyncio accepts up to ``backlog`` connections in one go before any reaches the
        # factory: the burst must fit in the reserve too
        super().__init__(runner, host, port, backlog=BACKLOG)
        self.max_connections = max_connections
        self._on_reset = on_reset

    def _factory(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        if len(server.connections) >= self.max_connections:
            return _Reset(self._on_reset)
        return server()

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        self._server = await asyncio.get_running_loop().create_server(
            self._factory, self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
