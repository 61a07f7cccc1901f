"""``/mcp``: the MCP Streamable HTTP transport (revisions 2025-03-26 to 2025-11-25).

- ``POST /mcp``: one JSON-RPC message. ``initialize`` opens a session (``Mcp-Session-Id`` in
  the answer); every other message names it. A request is answered as JSON, or as an SSE stream
  when it asked for progress (``_meta.progressToken``) and accepts ``text/event-stream``: its
  ``notifications/progress`` first, then its response. A notification or a response is
  answered ``202 Accepted``.
- ``GET /mcp``: the session's SSE stream of server messages
  (``notifications/resources/updated`` for its subscriptions).
- ``DELETE /mcp``: ends the session.

HTTP errors: 400 without a session id or with an unsupported ``MCP-Protocol-Version``, 404 for a
session that expired or ended (the client starts a new one), 406 for an ``Accept`` that takes
neither JSON nor SSE, 401 without the API token when the daemon has one (the security
middleware, and here for ``GET``), 403 for a foreign ``Origin`` (the middleware, as for every
route). The admin tools need ``X-Admin-Token``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import structlog
from aiohttp import web

from transport.body_decoding import read_body
from transport.graph_input import INLINE_BYTES
from transport.http_errors import RETRY_AFTER_S
from transport.json_input import parse_json
from transport.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PARSE_ERROR,
    REQUEST_CANCELLED,
    SERVER_ERROR,
    rpc_error,
)
from transport.mcp.server import VERSIONS, Call, RpcError, capabilities, dispatch, negotiate
from transport.mcp.sessions import ENDED, MAX_SESSIONS, McpSession, SessionStore
from transport.mcp.tools import RESOURCES, read_resource, resource_signature
from transport.security import tokens_match
from transport.services import SERVICES, Services

__all__ = ["MCP_SESSIONS", "SESSION_HEADER", "VERSION_HEADER", "add_routes"]

log = structlog.get_logger("transport.mcp")

SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
WATCH_EVERY_S = 0.5  # subscribed resources are compared this often
KEEPALIVE_S = 15.0
MCP_SESSIONS: web.AppKey[SessionStore] = web.AppKey("mcp_sessions", SessionStore)
_WATCHER: web.AppKey[asyncio.Task[None]] = web.AppKey("mcp_watcher", asyncio.Task)


def add_routes(app: web.Application) -> None:
    app[MCP_SESSIONS] = SessionStore(lambda: app[SERVICES].server.mcp_session_ttl_s)
    app.router.add_post("/mcp", post)
    app.router.add_get("/mcp", stream)
    app.router.add_delete("/mcp", delete)
    app.on_startup.append(_start_watcher)
    app.on_shutdown.append(_stop_watcher)


def _error(request_id: Any, code: int, message: str, status: int = 200) -> web.Response:
    return web.json_response(rpc_error(request_id, code, message), status=status)


def _http_error(status: int, message: str) -> web.Response:
    return _error(None, INVALID_REQUEST, message, status)


def _accepts(request: web.Request) -> tuple[bool, bool]:
    """(JSON, SSE) from the Accept header (missing: both)."""
    accept = request.headers.get("Accept", "")
    if not accept.strip():
        return True, True
    wants_all = "*/*" in accept
    return ("application/json" in accept or wants_all), ("text/event-stream" in accept or wants_all)


def _session(request: web.Request) -> McpSession | web.Response:
    version = request.headers.get(VERSION_HEADER)
    if version is not None and version not in VERSIONS:
        return _http_error(400, f"{VERSION_HEADER} {version[:40]!r} is not supported (this server "
                                f"speaks {', '.join(VERSIONS)})")
    session_id = request.headers.get(SESSION_HEADER)
    if not session_id:
        return _http_error(400, f"no {SESSION_HEADER} header: send initialize first, then the "
                                "session id it answered with on every request")
    session = request.app[MCP_SESSIONS].get(session_id)
    if session is None:
        return _http_error(404, "this session has expired or ended: initialize a new one")
    if version is not None and version != session.version:
        return _http_error(400, f"{VERSION_HEADER} {version!r} is not this session's "
                                f"({session.version}, negotiated at initialize)")
    return session


def _is_admin(request: web.Request, services: Services) -> bool:
    return tokens_match(request.headers.get("X-Admin-Token"), services.server.admin_token)


async def post(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    json_ok, sse_ok = _accepts(request)
    if not (json_ok or sse_ok):
        return _http_error(406, "Accept must include application/json or text/event-stream")
    raw = await read_body(request, services.server.max_body_bytes)
    try:  # a big body (load_graph) is parsed off the event loop
        message = parse_json(raw) if len(raw) <= INLINE_BYTES else \
            await asyncio.get_running_loop().run_in_executor(None, parse_json, raw)
    except ValueError as exc:
        return _error(None, PARSE_ERROR, f"not valid JSON: {exc}", 400)
    if isinstance(message, list):
        return _error(None, INVALID_REQUEST, "send one JSON-RPC message per request (batches "
                                             "were removed in revision 2025-06-18)", 400)
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _error(None, INVALID_REQUEST, "a JSON-RPC 2.0 message is an object with "
                                             "\"jsonrpc\": \"2.0\"", 400)
    method, request_id = message.get("method"), message.get("id")
    params = message.get("params", {})
    if method is not None and not isinstance(method, str):
        return _error(None, INVALID_REQUEST, "method must be a string", 400)
    if "id" in message and (isinstance(request_id, bool) or not isinstance(request_id, str | int)):
        return _error(None, INVALID_REQUEST, "id must be a string or an integer", 400)
    if params is not None and not isinstance(params, dict):
        return _error(request_id, INVALID_REQUEST, "params must be an object", 400)
    if method == "initialize":
        return _initialize(request, services, request_id, params or {})
    found = _session(request)
    if isinstance(found, web.Response):
        return found
    session = found
    session.initialized = True  # it came back with its id: the handshake is done
    if method is None or "id" not in message:  # a response or a notification
        if method == "notifications/cancelled":
            target = (params or {}).get("requestId")
            task = session.in_flight.get(target) if isinstance(target, str | int) else None
            if task is not None:
                session.cancelled.add(target)
                task.cancel()
        return web.Response(status=202)
    token = (params or {}).get("_meta", {}).get("progressToken") \
        if isinstance((params or {}).get("_meta"), dict) else None
    if token is not None and sse_ok:
        return await _answer_as_stream(request, services, session, request_id, method, params or {})
    return await _answer_as_json(request, services, session, request_id, method, params or {})


def _initialize(request: web.Request, services: Services, request_id: Any,
                params: dict[str, Any]) -> web.Response:
    client = params.get("clientInfo") if isinstance(params.get("clientInfo"), dict) else {}
    version = negotiate(params.get("protocolVersion"))
    session = request.app[MCP_SESSIONS].create(version, dict(client or {}))
    if session is None:
        response = _error(request_id, SERVER_ERROR, f"this daemon has {MAX_SESSIONS} MCP sessions "
                                                    f"open, its limit: end one (DELETE /mcp) or "
                                                    f"try again later", 503)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    log.info("mcp_server.session", session=session.id[:8], version=version,
             client=str((client or {}).get("name", ""))[:60])
    result = {
        "protocolVersion": version, "capabilities": capabilities(),
        "serverInfo": {"name": "hive-supervisor", "version": services.metrics.version},
        "instructions": "hive-supervisor keeps swarms of AI agents alive: spawn_swarm, "
                        "list_swarms and stop_swarm steer them; health and actor_tree (and the "
                        "hive://health resource) show the daemon; restart_actor needs the admin "
                        "token (X-Admin-Token).",
    }
    response = web.json_response({"jsonrpc": "2.0", "id": request_id, "result": result})
    response.headers[SESSION_HEADER] = session.id
    return response


async def _run(request: web.Request, services: Services, session: McpSession, request_id: Any,
               method: str, params: dict[str, Any],
               notify: Any) -> dict[str, Any]:
    """The JSON-RPC answer for one request, run as a task the session can cancel."""
    if request_id in session.in_flight:
        return rpc_error(request_id, INVALID_REQUEST, "a request with this id is already in flight")
    call = Call(services, session, method, params, _is_admin(request, services), notify)
    task = asyncio.ensure_future(dispatch(call))
    session.in_flight[request_id] = task
    try:
        return {"jsonrpc": "2.0", "id": request_id, "result": await task}
    except RpcError as exc:
        return rpc_error(request_id, exc.code, exc.message)
    except asyncio.CancelledError:
        if request_id not in session.cancelled:
            raise  # the client went away, or the daemon stops: nobody to answer
        return rpc_error(request_id, REQUEST_CANCELLED, "request cancelled")
    except Exception as exc:
        log.error("mcp_server.failed", method=method, error=repr(exc), exc_info=True)
        return rpc_error(request_id, INTERNAL_ERROR, f"internal error in {method}")
    finally:
        session.in_flight.pop(request_id, None)
        session.cancelled.discard(request_id)


async def _answer_as_json(request: web.Request, services: Services, session: McpSession,
                          request_id: Any, method: str, params: dict[str, Any]) -> web.Response:
    async def notify(message: dict[str, Any]) -> None:
        session.push(message)  # no stream for this request: the session's GET stream has it

    answer = await _run(request, services, session, request_id, method, params, notify)
    return web.json_response(answer)


async def _answer_as_stream(request: web.Request, services: Services, session: McpSession,
                            request_id: Any, method: str, params: dict[str, Any]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)

    async def notify(message: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionResetError):  # the client left: the tool goes on
            await _event(response, message)

    answer = await _run(request, services, session, request_id, method, params, notify)
    with contextlib.suppress(ConnectionResetError):
        await _event(response, answer)
        await response.write_eof()
    return response


async def _event(response: web.StreamResponse, message: dict[str, Any]) -> None:
    await response.write(f"event: message\ndata: {json.dumps(message, default=str)}\n\n".encode())


async def stream(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    if not services.access.authorized(request):
        return _http_error(401, "this daemon has an API token: send it as 'Authorization: Bearer <token>'")
    _, sse_ok = _accepts(request)
    if not sse_ok:
        return _http_error(406, "GET /mcp is an SSE stream: Accept must include text/event-stream")
    found = _session(request)
    if isinstance(found, web.Response):
        return found
    session = found
    if session.streaming:
        return _http_error(409, "this session's stream is already open")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    store = request.app[MCP_SESSIONS]
    session.streaming = True
    try:
        with contextlib.suppress(ConnectionResetError):
            while store.alive(session):
                try:
                    message = await asyncio.wait_for(session.outbox.get(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if message.get("method") == ENDED:  # DELETE, expiry or shutdown: it ends
                    break
                await _event(response, message)
    finally:
        session.streaming = False
    return response


async def delete(request: web.Request) -> web.Response:
    found = _session(request)
    if isinstance(found, web.Response):
        return found
    request.app[MCP_SESSIONS].delete(found.id)
    return web.Response(status=204)


# -- resource subscriptions ---------------------------------------------------------------------

async def _start_watcher(app: web.Application) -> None:
    app[_WATCHER] = asyncio.create_task(_watch(app))


async def _stop_watcher(app: web.Application) -> None:
    task = app.get(_WATCHER)
    if task is not None:
        task.cancel()
    for session_id in list(app[MCP_SESSIONS]._sessions):
        app[MCP_SESSIONS].delete(session_id)


async def _watch(app: web.Application) -> None:
    """``notifications/resources/updated`` to each session subscribed to a resource that
    changed (compared every :data:`WATCH_EVERY_S` while anyone is subscribed)."""
    services, store = app[SERVICES], app[MCP_SESSIONS]
    last: dict[str, Any] = {}
    while True:
        await asyncio.sleep(WATCH_EVERY_S)
        for resource in RESOURCES:
            uri = resource["uri"]
            sessions = store.subscribed(uri)
            if not sessions:
                last.pop(uri, None)
                continue
            try:
                body = await read_resource(services, uri) if uri != "hive://actors" else None
                signature = resource_signature(services, uri, body)
            except Exception as exc:  # noqa: BLE001 - the health actor restarting: next time
                log.info("mcp_server.resource_unreadable", uri=uri, error=str(exc)[:200])
                continue
            if uri in last and last[uri] != signature:
                for session in sessions:
                    session.push({"jsonrpc": "2.0", "method": "notifications/resources/updated",
                                  "params": {"uri": uri}})
            last[uri] = signature
