"""What the MCP engine raises: JSON-RPC errors, failed tools, gone peers, an empty pool."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CallTimeout",
    "MaintenanceFailed",
    "McpError",
    "NoConnection",
    "PeerGone",
    "RpcError",
    "ToolFailed",
]


class McpError(Exception):
    """Base of the errors an MCP call can raise."""


class RpcError(McpError):
    """The server answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.rpc_message = message
        self.data = data


class ToolFailed(McpError):
    """The tool ran and said no (``isError`` or ``success: false``): a valid answer, not a
    broken peer, so it does not count against the circuit breaker."""

    def __init__(self, tool: str, message: str, payload: Any = None) -> None:
        super().__init__(f"{tool} failed: {message}")
        self.tool = tool
        self.payload = payload


class PeerGone(McpError):
    """The connection closed (the server died or hung up) with the call in flight."""


class CallTimeout(McpError, TimeoutError):
    """No answer within the call's timeout; the server was told to cancel it."""


class NoConnection(McpError):
    """No member of the pool is connected right now."""


class MaintenanceFailed(RuntimeError):
    """The receipt log could not be compacted; the caller recycles the server instead."""
