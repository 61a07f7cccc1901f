"""A JSON-RPC 2.0 client for the Model Context Protocol over newline-delimited JSON.

One :class:`JsonRpcConnection` per server connection (a stdio child process or a TCP socket).
Calls may overlap: each gets an id and a future; a reader thread matches responses to futures
by id. Notifications and requests from the server are never taken for responses (a server
``ping`` is answered; anything else that is not a response is ignored, as is a non-JSON line
such as claude-flow's ``server.initialized`` banner). When the peer dies, every call in flight
fails at once with :class:`PeerGone`: nobody waits for a timeout on a dead process.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import IO, Any, Protocol

import structlog

from actors.mcp.errors import CallTimeout, McpError, PeerGone, RpcError, ToolFailed
from actors.mcp.settings import McpSettings
from actors.processes import stop_group

__all__ = [
    "CLIENT_INFO",
    "MAX_LINE",
    "PROTOCOL_VERSION",
    "JsonRpcConnection",
    "LineChannel",
    "ProcessChannel",
    "SocketChannel",
    "decode_tool_result",
    "unwrap",
]


log = structlog.get_logger("actors.mcp.jsonrpc")
_DEFAULTS = McpSettings()  # the timeouts of a connection made by hand are the settings' own

PROTOCOL_VERSION = "2024-11-05"
CLIENT_INFO = {"name": "hive-supervisor", "version": "0.1.0"}
MAX_LINE = 16 * 1024 * 1024


class LineChannel(Protocol):
    """A bidirectional stream of lines (one JSON message each)."""

    def write_line(self, data: bytes) -> None: ...

    def read_line(self) -> bytes: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...


class ProcessChannel:
    """A server started as a child process, speaking on its stdin/stdout."""

    def __init__(
        self, argv: Sequence[str], cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None, stderr_path: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self._stderr: IO[bytes] | None = open(stderr_path, "ab") if stderr_path else None  # noqa: SIM115
        # its own process group, stopped as a whole; it exits when the daemon dies (its stdin
        # closes), so no parent-death signal: that would fire when the connecting thread ends
        self.process = subprocess.Popen(
            self.argv, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr or subprocess.DEVNULL, bufsize=0,
            start_new_session=True,
        )
        self._write_lock = threading.Lock()
        assert self.process.stdout is not None and self.process.stdin is not None
        self._stdout = self.process.stdout
        self._stdin = self.process.stdin

    @property
    def pid(self) -> int:
        return self.process.pid

    def write_line(self, data: bytes) -> None:
        with self._write_lock:
            self._stdin.write(data + b"\n")
            self._stdin.flush()

    def read_line(self) -> bytes:
        return self._stdout.readline(MAX_LINE)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()  # a well-behaved stdio server exits when stdin closes
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=2)
        stop_group(self.process)  # also whatever the server started (npx, node workers)
        with contextlib.suppress(OSError):
            self._stdout.close()
        if self._stderr is not None:
            self._stderr.close()

    def describe(self) -> str:
        return f"stdio pid {self.process.pid}"


class SocketChannel:
    """A server reached over TCP (the original system's port 9500 bridge)."""

    def __init__(self, host: str, port: int, connect_timeout: float = 5.0) -> None:
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self.sock.makefile("rb")
        self._write_lock = threading.Lock()

    def write_line(self, data: bytes) -> None:
        with self._write_lock:
            self.sock.sendall(data + b"\n")

    def read_line(self) -> bytes:
        return self._file.readline(MAX_LINE)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            self._file.close()

    def describe(self) -> str:
        return f"tcp {self.host}:{self.port}"


class JsonRpcConnection:
    def __init__(self, channel: LineChannel, name: str = "mcp") -> None:
        self.channel = channel
        self.name = name
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-reader", daemon=True)
        self.server_info: dict[str, Any] | None = None
        self.calls = 0
        self.started_at = time.monotonic()
        self.death: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> JsonRpcConnection:
        self._reader.start()
        return self

    @property
    def alive(self) -> bool:
        return not self._closed.is_set()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        self._closed.set()
        self.channel.close()
        self._fail_all(PeerGone(f"{self.name}: connection closed"))

    def _read_loop(self) -> None:
        reason = "end of stream"
        try:
            while True:
                line = self.channel.read_line()
                if not line:
                    break
                self._on_line(line)
        except (OSError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        self.death = reason
        self._closed.set()
        self._fail_all(PeerGone(f"{self.name} ({self.channel.describe()}) went away: {reason}"))

    def _on_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            log.debug("mcp.non_json_line", connection=self.name, line=line[:200])
            return
        if not isinstance(message, dict):
            return
        if "method" not in message and "id" in message and ("result" in message or "error" in message):
            with self._lock:
                future = self._pending.pop(message["id"], None) if isinstance(message["id"], int) else None
            if future is not None and not future.done():
                future.set_result(message)
            return
        if "method" in message and "id" in message:  # a request from the server
            if message["method"] == "ping":
                self._send({"jsonrpc": "2.0", "id": message["id"], "result": {}})
            else:
                self._send({"jsonrpc": "2.0", "id": message["id"],
                            "error": {"code": -32601, "message": "method not found"}})
        # notifications (method, no id) are not responses: ignored

    def _fail_all(self, error: McpError) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    def _send(self, message: Mapping[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode()
        try:
            self.channel.write_line(data)
        except (OSError, ValueError) as exc:
            self._closed.set()
            raise PeerGone(f"{self.name}: cannot write: {exc}") from None

    # -- calls -----------------------------------------------------------------------------

    def request_future(self, method: str, params: Any = None) -> tuple[int, Future[dict[str, Any]]]:
        """Send a request; the future resolves to the raw response message."""
        if not self.alive:
            raise PeerGone(f"{self.name}: connection is closed ({self.death or 'closed'})")
        request_id = next(self._ids)
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            self._pending[request_id] = future
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            self._send(message)
        except PeerGone:
            with self._lock:
                self._pending.pop(request_id, None)
            raise
        if method == "tools/call":
            self.calls += 1
        return request_id, future

    def cancel(self, request_id: int, reason: str = "timeout") -> None:
        with self._lock:
            future = self._pending.pop(request_id, None)
        if future is not None and not future.done():
            future.set_exception(CallTimeout(f"{self.name}: request {request_id} cancelled ({reason})"))
        with contextlib.suppress(McpError):
            self.notify("notifications/cancelled", {"requestId": request_id, "reason": reason})

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)

    def request(self, method: str, params: Any = None,
                timeout: float = _DEFAULTS.call_timeout_s) -> Any:
        request_id, future = self.request_future(method, params)
        try:
            response = future.result(timeout)
        except FutureTimeout:
            self.cancel(request_id)
            raise CallTimeout(f"{self.name}: {method} got no answer within {timeout} s") from None
        return unwrap(response)

    def initialize(self, timeout: float = _DEFAULTS.handshake_timeout_s) -> dict[str, Any]:
        result = self.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION, "clientInfo": CLIENT_INFO, "capabilities": {},
        }, timeout=timeout)
        self.notify("notifications/initialized")
        self.server_info = result if isinstance(result, dict) else {}
        return self.server_info

    def list_tools(self, timeout: float = _DEFAULTS.call_timeout_s) -> list[dict[str, Any]]:
        result = self.request("tools/list", {}, timeout=timeout)
        return list(result.get("tools", [])) if isinstance(result, dict) else []

    def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None,
                  timeout: float = _DEFAULTS.call_timeout_s) -> Any:
        result = self.request("tools/call", {"name": name, "arguments": dict(arguments or {})},
                              timeout=timeout)
        return decode_tool_result(name, result)


def unwrap(response: Mapping[str, Any]) -> Any:
    """The ``result`` of a response message, or its error raised as :class:`RpcError`."""
    if "error" in response:
        error = response["error"] if isinstance(response["error"], dict) else {}
        raise RpcError(int(error.get("code", -32603)), str(error.get("message", "error")),
                       error.get("data"))
    return response.get("result")


def decode_tool_result(tool: str, result: Any) -> Any:
    """MCP tool results carry JSON as text in ``content[0].text``; failures come as
    ``isError`` or, from claude-flow, as ``{"success": false, "error": ...}``."""
    if not isinstance(result, dict):
        raise ToolFailed(tool, f"malformed result: {result!r}"[:300])
    content = result.get("content") or []
    first = content[0] if content and isinstance(content[0], dict) else {}
    text = first.get("text")
    payload: Any = text
    if isinstance(text, str):
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
    if result.get("isError"):
        raise ToolFailed(tool, _error_text(payload), payload)
    if isinstance(payload, dict) and payload.get("success") is False:
        raise ToolFailed(tool, _error_text(payload), payload)
    return payload


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("error") or payload.get("message") or payload)[:500]
    return str(payload)[:500]
