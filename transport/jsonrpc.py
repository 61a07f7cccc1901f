"""JSON-RPC 2.0 as the front end answers it (``/ws/mcp-relay`` and ``/mcp``): the error codes,
the error answer, and giving up on a call relayed to the MCP pool. A leaf of ``transport/``."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.mcp.messages import RelayTicket

__all__ = ["INTERNAL_ERROR", "INVALID_PARAMS", "INVALID_REQUEST", "METHOD_NOT_FOUND", "PARSE_ERROR",
           "REQUEST_CANCELLED", "RESOURCE_NOT_FOUND", "SERVER_ERROR", "cancel_off_loop", "rpc_error"]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000  # the relayed peer is down or did not answer
RESOURCE_NOT_FOUND = -32002  # MCP's
REQUEST_CANCELLED = -32800  # the client's own notifications/cancelled


def rpc_error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def cancel_off_loop(ticket: RelayTicket, reason: str) -> None:
    """Cancelling writes to the server's pipe, which a wedged server may not drain: never on
    the event loop's thread. The server is told (notifications/cancelled) and the pool's count
    of calls in flight follows."""
    asyncio.get_running_loop().run_in_executor(None, ticket.cancel, reason)
