"""``/ws/mcp-relay``: JSON-RPC 2.0 from a client, forwarded through the MCP pool.

Each request goes out with a pool id of its own and comes back with the client's id. A client
sticks to one pooled server (its state lives there). The client's ``initialize`` is answered
from the pooled session's own handshake; its ``notifications/initialized`` is absorbed.
Malformed input gets the matching JSON-RPC error (-32700 parse error, -32600 invalid request),
never a closed connection.

Only the tools on the relay's allow-list (:mod:`transport.relay_policy`) are forwarded; anything
else gets error -32001 naming the policy, and ``tools/list`` shows the allowed tools alone. When
the daemon has an API token, every request needs it: given at the upgrade (``Authorization:
Bearer``, ``?token=``) or as a first message ``{"type": "auth", "token": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from actors.circuit_breaker import BreakerOpen
from actors.mcp.errors import McpError
from actors.mcp.jsonrpc import PROTOCOL_VERSION
from actors.mcp.messages import GetServerInfo, RelayRequest, RelayTicket
from actors.mcp.settings import McpSettings
from supervisor import SupervisionError
from transport.json_input import parse_json
from transport.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    SERVER_ERROR,
    cancel_off_loop,
    rpc_error,
)
from transport.relay_policy import POLICY_DENIED
from transport.services import Services
from transport.ws import CLOSE_POLICY, CLOSE_TOO_BIG, Connection, guarded, open_ws, release

__all__ = ["MAX_BATCH", "UNAUTHORIZED", "add_routes", "mcp_relay_ws", "validate"]


MAX_BATCH = 100
UNAUTHORIZED = ("this daemon has an API token: connect with 'Authorization: Bearer <token>' or "
                "?token=, or send {\"type\": \"auth\", \"token\": \"...\"} first")
_client_keys = itertools.count()
log = structlog.get_logger("transport.mcp_relay")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws/mcp-relay", mcp_relay_ws)


def validate(message: Any) -> str | None:
    """Why ``message`` is not a JSON-RPC 2.0 request or notification (None when it is)."""
    if not isinstance(message, dict):
        return "a request must be a JSON object"
    if message.get("jsonrpc") != "2.0":
        return "'jsonrpc' must be \"2.0\""
    if not isinstance(message.get("method"), str) or not message["method"]:
        return "'method' must be a non-empty string"
    if "id" in message and not (message["id"] is None or (isinstance(message["id"], str | int | float)
                                and not isinstance(message["id"], bool))):
        return "'id' must be a string, a number or null"
    if "params" in message and not isinstance(message["params"], dict | list):
        return "'params' must be an object or an array"
    return None


async def mcp_relay_ws(request: web.Request) -> web.StreamResponse:
    opened = await open_ws(request, "/ws/mcp-relay")
    if not isinstance(opened, Connection):
        return opened
    conn = opened
    key = next(_client_keys)
    tasks: set[asyncio.Task[None]] = set()
    try:
        while not conn.ws.closed:
            msg = await conn.ws.receive(timeout=conn.services.server.idle_timeout_s)
            if msg.type == WSMsgType.TEXT:
                await guarded(conn, _on_text(conn, key, msg.data, tasks))
            elif msg.type == WSMsgType.BINARY:
                await conn.send_json(rpc_error(None, INVALID_REQUEST,
                                               "binary frames are not JSON-RPC; send text"))
            elif msg.type == WSMsgType.ERROR:
                if conn.ws.close_code == CLOSE_TOO_BIG:
                    conn.services.metrics.ws_rejected.labels(route=conn.route, reason="too_big").inc()
                break
            else:
                break
    except TimeoutError:
        await conn.close(CLOSE_POLICY, "idle")
    finally:
        for task in tasks:
            task.cancel()
        await release(conn)
    return conn.ws


async def _on_text(conn: Connection, key: int, text: str, tasks: set[asyncio.Task[None]]) -> None:
    try:
        message = parse_json(text)
    except ValueError as exc:
        await conn.send_json(rpc_error(None, PARSE_ERROR, "Parse error", str(exc)))
        return
    if isinstance(message, dict) and message.get("type") == "auth" and "jsonrpc" not in message:
        await conn.authenticate(message.get("token"))
        return
    if isinstance(message, list):
        if not message or len(message) > MAX_BATCH:
            await conn.send_json(rpc_error(None, INVALID_REQUEST,
                                           f"a batch holds 1 to {MAX_BATCH} requests"))
            return
        for item in message:  # batches are answered item by item
            await _dispatch(conn, key, item, tasks)
        return
    await _dispatch(conn, key, message, tasks)


async def _dispatch(conn: Connection, key: int, message: Any, tasks: set[asyncio.Task[None]]) -> None:
    problem = validate(message)
    if problem is not None:
        request_id = message.get("id") if isinstance(message, dict) else None
        valid_id = isinstance(request_id, str | int | float) and not isinstance(request_id, bool)
        await conn.send_json(rpc_error(request_id if valid_id else None,
                                       INVALID_REQUEST, "Invalid Request", problem))
        return
    is_notification = "id" not in message
    method = message["method"]
    if not conn.authorized:
        if not is_notification:
            await conn.send_json(rpc_error(message["id"], POLICY_DENIED, UNAUTHORIZED))
        return
    if method == "initialize" and not is_notification:
        await _initialize(conn, message["id"])
        return
    if method.startswith("notifications/"):
        return  # the pooled session did its own handshake; other notifications have no target
    refusal = conn.services.relay_policy.refusal(method, message.get("params"))
    if refusal is not None:
        log.info("relay.refused", method=method, reason=refusal)
        if not is_notification:
            await conn.send_json(rpc_error(message["id"], POLICY_DENIED, refusal))
        return
    too_big = conn.services.relay_policy.argument_problem(method, message.get("params"))
    if too_big is not None:
        log.info("relay.refused", method=method, reason=too_big[:200])
        if not is_notification:
            await conn.send_json(rpc_error(message["id"], INVALID_PARAMS, too_big))
        return
    task = asyncio.create_task(_forward_guarded(conn, key, message, is_notification))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _initialize(conn: Connection, request_id: Any) -> None:
    services = conn.services
    try:
        info = await _mcp(services).ask_async(GetServerInfo(), timeout=5)
    except (SupervisionError, McpError) as exc:
        await conn.send_json(rpc_error(request_id, SERVER_ERROR, f"MCP unavailable: {exc}"))
        return
    result = dict(info or {"protocolVersion": PROTOCOL_VERSION,
                           "serverInfo": {"name": "hive-supervisor relay"}})
    # the relay forwards tools alone: resources and prompts are not offered through it
    # (and tools/list_changed notifications are not forwarded, so none is promised)
    result["capabilities"] = {"tools": {}}
    await conn.send_json({"jsonrpc": "2.0", "id": request_id, "result": result})


def _mcp(services: Services) -> Any:
    return services.address("mcp")


async def _forward_guarded(conn: Connection, key: int, message: dict[str, Any],
                           notification: bool) -> None:
    try:
        await _forward(conn, key, message, notification)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("relay.failed", error=repr(exc), exc_info=True)
        if not notification:
            with contextlib.suppress(Exception):
                await conn.send_json(rpc_error(message.get("id"), INTERNAL_ERROR, "internal error"))


async def _forward(conn: Connection, key: int, message: dict[str, Any], notification: bool) -> None:
    services = conn.services
    request_id = message.get("id")
    timeout = services.settings("mcp", McpSettings).call_timeout_s
    try:
        ticket: RelayTicket = await _mcp(services).ask_async(
            RelayRequest(message["method"], message.get("params"), key), timeout=5)
    except (SupervisionError, McpError, BreakerOpen) as exc:
        if not notification:
            await conn.send_json(rpc_error(request_id, SERVER_ERROR, f"MCP unavailable: {exc}"))
        return
    try:
        response = await asyncio.wait_for(asyncio.wrap_future(ticket.future), timeout)
    except TimeoutError:
        cancel_off_loop(ticket, "relay client timeout")
        response = rpc_error(request_id, SERVER_ERROR, f"no answer from the MCP server in {timeout} s")
    except McpError as exc:
        response = rpc_error(request_id, SERVER_ERROR, f"MCP server failed: {exc}")
    except asyncio.CancelledError:
        cancel_off_loop(ticket, "relay client went away")
        raise
    if notification:
        return
    answer = {k: v for k, v in response.items() if k in ("result", "error")}
    if message["method"] == "tools/list" and "result" in answer:
        answer["result"] = services.relay_policy.filter_listing(answer["result"])
    with contextlib.suppress(ConnectionResetError):
        await conn.send_json({"jsonrpc": "2.0", "id": request_id, **answer})
