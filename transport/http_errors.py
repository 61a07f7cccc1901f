"""JSON errors: the one mapping from domain errors to HTTP statuses, and the middleware that
answers every failure as JSON, counts every request, and never sends a traceback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from actors.circuit_breaker import BreakerOpen
from actors.hive_mind.errors import (
    BackendUnavailable,
    CommandFailed,
    IdempotencyConflict,
    SwarmBusy,
    UnknownSession,
)
from actors.mcp.errors import McpError
from supervisor import SupervisionError, UnknownChild
from transport.access_log import route_of
from transport.body_decoding import BodyError
from transport.services import SERVICES

__all__ = [
    "CLIENT_GONE",
    "DOMAIN_ERRORS",
    "KNOWN_METHODS",
    "RETRY_AFTER_S",
    "STATUS_BY_ERROR",
    "error_response",
    "errors_middleware",
    "json_error",
]


log = structlog.get_logger("transport.http")

# The status counted (not sent: nobody is there) for a request whose client left mid-way;
# nginx's "client closed request", so that it never shows up as one of our 500s.
CLIENT_GONE = 499
RETRY_AFTER_S = 5
# A method label takes these values, else "other" (a client chooses the method: unbounded)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# First match wins: subclasses before their bases.
STATUS_BY_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (UnknownSession, 404),
    (UnknownChild, 404),
    (IdempotencyConflict, 422),
    (SwarmBusy, 409),
    (BackendUnavailable, 503),
    (CommandFailed, 502),
    (BreakerOpen, 503),
    (McpError, 503),
    (SupervisionError, 503),
)

# Every error the mapping knows: what a route catches around an actor call.
DOMAIN_ERRORS = tuple(kind for kind, _ in STATUS_BY_ERROR)


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, "status": status, **extra}, status=status)


def error_response(exc: BaseException, what: str) -> web.Response:
    """The answer for a domain error raised while serving ``what`` (e.g. "layout", "swarm
    backend"): 404 for something that does not exist, 409 for a state that forbids it now,
    422 for a request that contradicts an earlier one, 502 for a peer that said no, 503 (with
    ``Retry-After``) for something down or busy. Anything else is re-raised: a bug, a 500."""
    status = next((code for kind, code in STATUS_BY_ERROR if isinstance(exc, kind)), None)
    if status is None:
        raise exc
    if status in (404, 409, 422):
        return json_error(status, str(exc))
    if status == 502:
        return json_error(502, f"the {what} command failed: {exc}")
    response = json_error(503, f"{what} unavailable: {exc}")
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """JSON for every error, counters for every request, never a traceback to a client."""
    services = request.app[SERVICES]
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
            reason = f"request body too large (limit {services.server.max_body_bytes} bytes)"
        return json_error(exc.status, reason)
    except asyncio.CancelledError:  # the client left (or the server is stopping)
        status = CLIENT_GONE
        raise
    except BodyError as exc:  # decoded past the limit, or not valid for its encoding
        status = exc.status
        return json_error(exc.status, str(exc))
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
            method = request.method if request.method in KNOWN_METHODS else "other"
            services.metrics.observe_request(method, route_of(request), status,
                                             time.perf_counter() - started)
