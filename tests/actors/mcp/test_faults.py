"""Faults the real server does not produce on demand, injected with small misbehaving peers:
a server that cannot start, one whose answers are malformed, one that goes silent."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from actors.circuit_breaker import BreakerSettings, CircuitBreaker
from actors.mcp.actor import McpActor
from actors.mcp.errors import NoConnection, ToolFailed
from actors.mcp.messages import CallTool
from actors.mcp.pool import McpPool
from actors.mcp.servers import StdioConnector
from actors.mcp.settings import McpSettings
from actors.messages import StatusQuery
from supervisor import Backoff, SupervisionTree, SupervisorSpec, WorkerSpec
from tests.conftest import wait_for

# A stdio peer that does the handshake, then answers tools/call according to its mode.
PEER = textwrap.dedent('''
    import json, sys
    mode = sys.argv[1]
    for line in sys.stdin:
        msg = json.loads(line)
        if "id" not in msg:
            continue
        if msg["method"] == "initialize":
            out = {"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2024-11-05"}}
        elif mode == "silent":
            continue
        elif mode == "dict-content":
            out = {"jsonrpc": "2.0", "id": msg["id"], "result": {"content": {"text": "{}"}}}
        else:
            out = {"jsonrpc": "2.0", "id": msg["id"], "error": {"code": "oops", "message": 5}}
        sys.stdout.write(json.dumps(out) + "\\n")
        sys.stdout.flush()
''')


def peer(tmp_path: Path, mode: str) -> list[str]:
    script = tmp_path / "peer.py"
    script.write_text(PEER)
    return [sys.executable, str(script), mode]


@pytest.mark.parametrize("mode", ["dict-content", "bad-error-code"])
def test_malformed_answers_settle_as_typed_errors(tmp_path: Path, mode: str) -> None:
    pool = McpPool(StdioConnector(peer(tmp_path, mode), tmp_path / "state"), 1,
                   CircuitBreaker("t"), Backoff(0.1, 1))
    try:
        assert pool.ensure() == 1
        with pytest.raises(ToolFailed, match="malformed answer"):
            pool.call_tool("agent_list", {}).result(5)  # settles; never waits forever
    finally:
        pool.close()


def test_call_tool_told_while_no_server_is_up_does_not_crash_the_actor(tmp_path: Path) -> None:
    settings = McpSettings(command=(str(tmp_path / "no-such-server"),), state_dir=str(tmp_path),
                           pool_size=1, poll_interval_s=0.1)
    tree = SupervisionTree(SupervisorSpec("root", (WorkerSpec("mcp", McpActor, args=(settings,)),),
                                          max_restarts=1, within_seconds=60))
    tree.start()
    try:
        mcp = tree.address("root/mcp")
        for _ in range(5):
            mcp.tell(CallTool("agent_spawn", {"agentType": "coder"}))
        with pytest.raises(NoConnection):
            mcp.ask(CallTool("agent_list", {})).result(5)
        assert tree.describe("root/mcp")["incarnation"] == 1
        status = mcp.ask(StatusQuery())
        assert status.health == "degraded" and status.detail["mcp_health"] == "disconnected"
        assert "no-such-server" in status.reason or "No such file" in status.reason
    finally:
        tree.stop(10)


def test_a_silent_server_times_out_polls_and_opens_the_breaker(tmp_path: Path) -> None:
    settings = McpSettings(command=tuple(peer(tmp_path, "silent")), state_dir=str(tmp_path / "s"),
                           pool_size=1, poll_interval_s=0.05, call_timeout_s=0.3,
                           breaker=BreakerSettings(failure_threshold=2, recovery_timeout_s=60,
                                                   success_threshold=1))
    tree = SupervisionTree(SupervisorSpec("root", (WorkerSpec("mcp", McpActor, args=(settings,)),)))
    tree.start()
    try:
        mcp = tree.address("root/mcp")
        wait_for(lambda: mcp.ask(StatusQuery()).detail["breaker"]["state"] == "open", timeout=10)
        detail = mcp.ask(StatusQuery()).detail
        assert detail["members"][0]["in_flight"] == 0  # abandoned calls were cancelled
        assert detail["failures"] >= 2
    finally:
        tree.stop(10)
