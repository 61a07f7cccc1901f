"""MCP's JSON-RPC methods for the daemon: the handshake, tools (the daemon's own, and the pooled
claude-flow tools under :data:`FORWARD_PREFIX`), resources with subscriptions, and ping.

Handshake revisions: :data:`VERSIONS`; a client asking for another gets the newest (it may then
go away). Errors are JSON-RPC errors with a clear message: -32601 for an unknown method, -32602
for an unknown tool or arguments that do not fit its schema, -32002 for an unknown resource; a
tool that ran and failed answers ``isError`` with the reason. Never a traceback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from actors.mcp.errors import McpError
from actors.mcp.messages import RelayRequest, RelayTicket
from actors.mcp.settings import McpSettings
from supervisor import SupervisionError
from transport.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    RESOURCE_NOT_FOUND,
    cancel_off_loop,
)
from transport.mcp.sessions import McpSession
from transport.mcp.tools import RESOURCES, TOOLS, ToolContext, ToolError, check_arguments, read_resource
from transport.services import Services

__all__ = ["FORWARD_PREFIX", "VERSIONS", "Call", "RpcError", "capabilities", "dispatch", "negotiate"]

log = structlog.get_logger("transport.mcp")

VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")  # oldest to newest
FORWARD_PREFIX = "claude_flow_"
LIST_TIMEOUT_S = 5.0
_OWN = {tool.name: tool for tool in TOOLS}


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Call:
    """One request as the dispatcher sees it."""

    services: Services
    session: McpSession
    method: str
    params: Mapping[str, Any]
    admin: bool
    notify: Callable[[dict[str, Any]], Awaitable[None]]  # a message on this request's stream


def negotiate(requested: Any) -> str:
    return requested if requested in VERSIONS else VERSIONS[-1]


def capabilities() -> dict[str, Any]:
    return {"tools": {"listChanged": False}, "resources": {"subscribe": True, "listChanged": False}}


async def dispatch(call: Call) -> dict[str, Any]:
    """The result of one request; :class:`RpcError` for an error answer."""
    method, params = call.method, call.params
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": [t.listing() for t in TOOLS] + await _forwarded_tools(call.services)}
    if method == "tools/call":
        return await _call_tool(call)
    if method == "resources/list":
        return {"resources": [dict(r) for r in RESOURCES]}
    if method == "resources/templates/list":
        return {"resourceTemplates": []}
    if method == "resources/read":
        uri = _uri(params)
        try:
            body = await read_resource(call.services, uri)
        except ToolError as exc:  # the health actor restarting, say
            raise RpcError(INTERNAL_ERROR, f"{uri} cannot be read now: {exc}") from None
        if body is None:
            raise RpcError(RESOURCE_NOT_FOUND, f"no resource {uri[:200]!r} (known: "
                                               f"{', '.join(r['uri'] for r in RESOURCES)})")
        return {"contents": [{"uri": uri, "mimeType": "application/json",
                              "text": json.dumps(body, default=str)}]}
    if method in ("resources/subscribe", "resources/unsubscribe"):
        uri = _uri(params)
        if uri not in {r["uri"] for r in RESOURCES}:
            raise RpcError(RESOURCE_NOT_FOUND, f"no resource {uri[:200]!r}")
        if method == "resources/subscribe":
            call.session.subscriptions.add(uri)
        else:
            call.session.subscriptions.discard(uri)
        return {}
    raise RpcError(METHOD_NOT_FOUND, f"method {method[:100]!r} is not offered by this server "
                                     "(tools, resources and ping are)")


def _uri(params: Mapping[str, Any]) -> str:
    uri = params.get("uri")
    if not isinstance(uri, str):
        raise RpcError(INVALID_PARAMS, "params.uri must be a string")
    return uri


async def _call_tool(call: Call) -> dict[str, Any]:
    name, arguments = call.params.get("name"), call.params.get("arguments", {})
    if not isinstance(name, str):
        raise RpcError(INVALID_PARAMS, "params.name must be a tool's name")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise RpcError(INVALID_PARAMS, "params.arguments must be an object")
    if name.startswith(FORWARD_PREFIX):
        return await _forward(call, name.removeprefix(FORWARD_PREFIX), arguments)
    tool = _OWN.get(name)
    if tool is None:
        raise RpcError(INVALID_PARAMS, f"unknown tool {name[:100]!r} (tools/list has them)")
    problem = check_arguments(tool.input_schema, arguments)
    if problem:
        raise RpcError(INVALID_PARAMS, f"{name}: {problem}")
    if tool.admin and not call.admin:
        return _failed(f"{name} needs the admin token: send it as the X-Admin-Token header "
                       "(the daemon keeps it in <state_dir>/admin-token)")
    token = (call.params.get("_meta") or {}).get("progressToken") \
        if isinstance(call.params.get("_meta"), dict) else None

    async def progress(done: float, total: float | None, message: str) -> None:
        if token is None:
            return
        params: dict[str, Any] = {"progressToken": token, "progress": done, "message": message}
        if total is not None:
            params["total"] = total
        await call.notify({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})

    try:
        result = await tool.run(ToolContext(call.services, call.admin, progress), arguments)
    except ToolError as exc:
        return _failed(str(exc))
    return {"content": [{"type": "text", "text": json.dumps(result, default=str)}],
            "structuredContent": result, "isError": False}


def _failed(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


async def _relay(services: Services, method: str, params: dict[str, Any], key: int,
                 timeout: float) -> dict[str, Any]:
    """One request through the MCP pool and its breaker; McpError-like failures as ToolError."""
    try:
        ticket: RelayTicket = await services.address("mcp").ask_async(
            RelayRequest(method, params, key), timeout=5)
    except Exception as exc:  # noqa: BLE001 - the actor down, BreakerOpen, no connection
        raise ToolError(f"the MCP pool refused: {exc or type(exc).__name__}") from None
    try:
        response: dict[str, Any] = await asyncio.wait_for(asyncio.wrap_future(ticket.future), timeout)
    except TimeoutError:
        cancel_off_loop(ticket, "no answer in time")
        raise ToolError(f"the MCP pool did not answer in {timeout:g} s") from None
    except asyncio.CancelledError:  # the MCP client cancelled, or went away
        cancel_off_loop(ticket, "the MCP client cancelled")
        raise
    except (McpError, SupervisionError) as exc:
        raise ToolError(f"the MCP server failed: {exc}") from None
    return response


async def _forwarded_tools(services: Services) -> list[dict[str, Any]]:
    """claude-flow's tools that the relay allows, renamed with :data:`FORWARD_PREFIX` (none
    when the pool is off or down: the daemon's own tools are listed anyway)."""
    if not services.has("mcp"):
        return []
    try:
        response = await _relay(services, "tools/list", {}, 0, LIST_TIMEOUT_S)
    except ToolError as exc:
        log.info("mcp_server.forwarded_tools_unavailable", error=str(exc))
        return []
    listing = services.relay_policy.filter_listing(response.get("result"))
    return [{**tool, "name": FORWARD_PREFIX + tool["name"]} for tool in listing["tools"]]


async def _forward(call: Call, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    refusal = call.services.relay_policy.refusal("tools/call", {"name": name})
    if refusal is not None:
        raise RpcError(INVALID_PARAMS, f"unknown tool {FORWARD_PREFIX + name!r}: {refusal}")
    too_big = call.services.relay_policy.argument_problem("tools/call", {"name": name,
                                                                         "arguments": arguments})
    if too_big is not None:
        raise RpcError(INVALID_PARAMS, too_big)
    if not call.services.has("mcp"):
        return _failed("the MCP pool is not running in this daemon ([actors.mcp] enabled = false)")
    timeout = call.services.settings("mcp", McpSettings).call_timeout_s
    try:
        response = await _relay(call.services, "tools/call", {"name": name, "arguments": arguments},
                                hash(call.session.id) & 0xFFFF, timeout)
    except ToolError as exc:
        return _failed(str(exc))
    if "error" in response:
        error = response["error"] if isinstance(response["error"], dict) else {}
        return _failed(f"claude-flow: {str(error.get('message', 'error'))[:500]}")
    result = response.get("result")
    return result if isinstance(result, dict) else _failed("claude-flow answered no result")
