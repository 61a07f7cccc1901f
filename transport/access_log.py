"""The access log: one structured line per HTTP request, when switched on (``[log] access``).

aiohttp's own format quotes the request line, query string included, and the query is where a
browser puts its ``token``: this line has the path alone, and the route it matched (what the
metrics count by), so that it can be grepped per route without the ids in paths.
"""

from __future__ import annotations

from typing import ClassVar

import structlog
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, Request, StreamResponse

__all__ = ["AccessLog", "route_of"]

log = structlog.get_logger("transport.access")


def route_of(request: BaseRequest) -> str:
    """The route's pattern (``/api/swarms/{id}``), or ``unmatched``: a bounded set of values,
    unlike paths, for labels and greps."""
    if not isinstance(request, Request):
        return "unmatched"
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


class AccessLog(AbstractAccessLogger):
    """Off by default; a SIGHUP can switch it. aiohttp reads ``enabled`` once per connection,
    so the switch is read here, per request: a kept-alive connection follows it too."""

    enabled_now: ClassVar[bool] = False

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if not AccessLog.enabled_now:
            return
        log.info("http.access", method=request.method, route=route_of(request), path=request.path,
                 status=response.status, bytes=response.body_length, seconds=round(time, 6),
                 client=request.remote)
