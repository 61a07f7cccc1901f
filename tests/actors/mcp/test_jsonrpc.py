"""The JSON-RPC client against a real claude-flow MCP server, over stdio and over TCP."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.mcp.errors import CallTimeout, PeerGone, RpcError, ToolFailed
from actors.mcp.jsonrpc import JsonRpcConnection, ProcessChannel, SocketChannel, decode_tool_result


@pytest.fixture
def server(claude_flow: list[str], tmp_path: Path) -> Iterator[JsonRpcConnection]:
    conn = JsonRpcConnection(ProcessChannel([*claude_flow, "mcp", "start"], cwd=tmp_path), "test")
    conn.start()
    yield conn
    conn.close()


def test_handshake_tools_and_calls(server: JsonRpcConnection) -> None:
    info = server.initialize(timeout=10)
    assert info["protocolVersion"] and "serverInfo" in info
    tools = {t["name"] for t in server.list_tools()}
    assert {"swarm_init", "agent_spawn", "agent_list", "swarm_status"} <= tools
    swarm = server.call_tool("swarm_init", {"topology": "mesh", "maxAgents": 4})
    assert swarm["success"] and swarm["swarmId"].startswith("swarm-")
    agent = server.call_tool("agent_spawn", {"agentType": "researcher"})
    assert agent["agentType"] == "researcher"
    listed = server.call_tool("agent_list", {})
    assert [a["agentId"] for a in listed["agents"]] == [agent["agentId"]]
    status = server.call_tool("swarm_status", {})
    assert status["swarmId"] == swarm["swarmId"]


def test_typed_errors(server: JsonRpcConnection) -> None:
    server.initialize(timeout=10)
    with pytest.raises(RpcError) as info:
        server.call_tool("no_such_tool", {})
    assert info.value.code == -32601
    with pytest.raises(ToolFailed, match="agent_execute failed"):
        server.call_tool("agent_execute", {"agentId": "nobody", "prompt": "hi"})
    with pytest.raises(RpcError):
        server.request("no/such/method", {})


def test_overlapping_calls_are_matched_by_id(server: JsonRpcConnection) -> None:
    server.initialize(timeout=10)
    futures = [server.request_future("tools/call", {"name": "agent_spawn",
                                                     "arguments": {"agentType": t}})[1]
               for t in ("coder", "tester", "analyst", "reviewer")]
    types = [decode_tool_result("agent_spawn", f.result(10)["result"])["agentType"] for f in futures]
    assert types == ["coder", "tester", "analyst", "reviewer"]


# A peer that answers out of order: it reads three requests, then answers them last first.
REVERSING_PEER = """
import json, sys
requests = [json.loads(sys.stdin.readline()) for _ in range(3)]
for r in reversed(requests):
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": r["id"], "result": r["params"]}) + "\\n")
    sys.stdout.flush()
sys.stdin.read()
"""


def test_answers_out_of_order_reach_their_own_callers(tmp_path: Path) -> None:
    conn = JsonRpcConnection(ProcessChannel([sys.executable, "-c", REVERSING_PEER], cwd=tmp_path), "rev")
    conn.start()
    try:
        futures = [conn.request_future("echo", {"n": n})[1] for n in range(3)]
        assert [f.result(10)["result"]["n"] for f in futures] == [0, 1, 2]
    finally:
        conn.close()


def test_peer_dying_mid_call_fails_the_caller_at_once(claude_flow: list[str], tmp_path: Path) -> None:
    channel = ProcessChannel([*claude_flow, "mcp", "start"], cwd=tmp_path)
    conn = JsonRpcConnection(channel, "doomed").start()
    conn.initialize(timeout=10)
    _, future = conn.request_future("tools/list", {})
    channel.process.kill()
    # PeerGone, not a TimeoutError after waiting: the death itself fails the call
    with pytest.raises(PeerGone):
        future.result(30)
        conn.request("tools/list", {}, timeout=60)  # if the first one raced the kill
    assert not conn.alive
    with pytest.raises(PeerGone):
        conn.call_tool("agent_list", {})
    conn.close()


class Bridge:
    """A stdio-to-TCP bridge for the TCP transport's tests: each TCP connection gets its own
    real claude-flow process, with bytes pumped both ways (the server behind it is real)."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.argv, self.cwd = argv, cwd
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.procs: list[subprocess.Popen[bytes]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            proc = subprocess.Popen(self.argv, cwd=self.cwd, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            self.procs.append(proc)
            threading.Thread(target=self._pump_in, args=(sock, proc), daemon=True).start()
            threading.Thread(target=self._pump_out, args=(sock, proc), daemon=True).start()

    @staticmethod
    def _pump_in(sock: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None
        try:
            while data := sock.recv(65536):
                proc.stdin.write(data)
                proc.stdin.flush()
            proc.stdin.close()
        except OSError:
            return

    @staticmethod
    def _pump_out(sock: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        while data := proc.stdout.read1(65536):
            sock.sendall(data)
        sock.shutdown(socket.SHUT_RDWR)  # the server is gone: hang up on the client
        sock.close()

    def close(self) -> None:
        self.listener.close()
        for proc in self.procs:
            proc.kill()
            proc.wait()


def test_tcp_transport(claude_flow: list[str], tmp_path: Path) -> None:
    bridge = Bridge([*claude_flow, "mcp", "start"], tmp_path)
    try:
        conn = JsonRpcConnection(SocketChannel("127.0.0.1", bridge.port), "tcp").start()
        assert conn.initialize(timeout=10)["protocolVersion"]
        assert conn.call_tool("swarm_init", {"topology": "star", "maxAgents": 2})["success"]
        assert conn.call_tool("agent_list", {})["agents"] == []
        bridge.procs[0].kill()  # the server behind the socket dies mid-session
        with pytest.raises(PeerGone):
            conn.request("tools/list", {}, timeout=5)
        conn.close()
    finally:
        bridge.close()


def test_a_call_past_its_timeout_is_cancelled_and_the_connection_lives(
        server: JsonRpcConnection) -> None:
    server.initialize(timeout=10)
    with pytest.raises(CallTimeout, match="no answer within"):
        server.request("tools/list", {}, timeout=1e-6)
    assert server.in_flight == 0  # the late answer, if any, is dropped, not mis-delivered
    time.sleep(0.2)
    assert server.call_tool("agent_list", {})["agents"] == []
    assert server.alive


def test_non_responses_are_never_taken_for_responses(server: JsonRpcConnection) -> None:
    """A notification and a server request arriving between calls do not resolve anything."""
    server.initialize(timeout=10)
    server._on_line(b'{"jsonrpc":"2.0","method":"notifications/message","params":{"x":1}}')
    server._on_line(b"server.initialized")
    _, future = server.request_future("tools/list", {})
    server._on_line(b'{"jsonrpc":"2.0","method":"notifications/progress","params":{}}')
    assert len(future.result(10)["result"]["tools"]) > 100
