"""``/mcp`` with the official ``mcp`` SDK's Streamable HTTP client as the real client (and raw
HTTP for what the SDK never sends): the handshake, every tool, a spawn with progress against
the real claude-flow CLI, a cancelled call, a subscription that hears an actor's kill, and bad
input answered with the right MCP or HTTP error."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.conftest import TOKEN, Daemon, agents_config, start_daemon, wait_for
from transport.routes.mcp import MCP_SESSIONS

OWN_TOOLS = {"spawn_swarm", "list_swarms", "get_swarm", "stop_swarm", "list_agents", "load_graph",
             "layout_snapshot", "health", "actor_tree", "restart_actor", "stop_actor", "start_actor"}


@asynccontextmanager
async def client(d: Daemon, headers: dict[str, str] | None = None,
                 on_message: Any = None) -> AsyncIterator[ClientSession]:
    http = httpx2.AsyncClient(headers=headers or {}, timeout=60)
    async with (http, streamable_http_client(f"{d.url}/mcp", http_client=http) as (read, write),
                ClientSession(read, write, message_handler=on_message) as session):
        await session.initialize()
        yield session


async def test_handshake_tools_and_resources(daemon: Daemon) -> None:
    async with client(daemon) as session:
        assert session.initialize_result is not None
        assert session.initialize_result.protocol_version == "2025-11-25"
        assert session.initialize_result.server_info.name == "hive-supervisor"
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == OWN_TOOLS  # the pool is off here: no forwarded tools
        assert all(t.input_schema["type"] == "object" and t.output_schema for t in tools.values())
        resources = {r.uri for r in (await session.list_resources()).resources}
        assert {str(u) for u in resources} == {"hive://health", "hive://actors"}
        read = await session.read_resource("hive://actors")
        assert json.loads(read.contents[0].text)["path"] == "root"  # type: ignore[union-attr]
        await session.send_ping()


async def test_each_tool_of_the_layout_health_and_tree(daemon: Daemon) -> None:
    admin = {"X-Admin-Token": TOKEN}
    async with client(daemon, admin) as session:
        loaded = await session.call_tool("load_graph", {
            "nodes": [{"id": i, "label": f"n{i}"} for i in range(30)],
            "edges": [{"source": i, "target": i + 1} for i in range(29)]})
        assert not loaded.is_error and loaded.structured_content["loaded"]["nodes"] == 30
        near = await session.call_tool("layout_snapshot", {"node": 5, "limit": 4})
        nodes = near.structured_content["nodes"]
        assert next(n["id"] for n in nodes) == 5 and len(nodes) == 4
        assert nodes[0]["distance"] == 0 and nodes[1]["distance"] > 0
        health = await session.call_tool("health", {})
        assert health.structured_content["system_status"] in ("healthy", "degraded")
        tree = await session.call_tool("actor_tree", {"path": "root/health"})
        assert tree.structured_content["incarnation"] == 1
        restarted = await session.call_tool("restart_actor", {"path": "root/health"})
        assert not restarted.is_error and restarted.structured_content["node"]["incarnation"] == 2
        stopped = await session.call_tool("stop_actor", {"path": "root/health"})
        assert stopped.structured_content["node"]["state"] == "stopped"
        started = await session.call_tool("start_actor", {"path": "root/health"})
        assert started.structured_content["node"]["state"] == "running"
        unknown = await session.call_tool("restart_actor", {"path": "root/nope"})
        assert unknown.is_error and "root/nope" in unknown.content[0].text  # type: ignore[union-attr]


async def test_admin_tools_need_the_admin_token(daemon: Daemon) -> None:
    async with client(daemon) as session:
        refused = await session.call_tool("restart_actor", {"path": "root/health"})
        assert refused.is_error and "X-Admin-Token" in refused.content[0].text  # type: ignore[union-attr]
    assert daemon.tree.describe("root/health")["incarnation"] == 1  # nothing happened


async def test_bad_input_gets_mcp_errors(daemon: Daemon) -> None:
    async with client(daemon) as session:
        with pytest.raises(MCPError) as unknown:
            await session.call_tool("rm_rf", {})
        assert unknown.value.error.code == -32602 and "unknown tool" in unknown.value.error.message
        with pytest.raises(MCPError) as wrong:
            await session.call_tool("get_swarm", {"id": 5})
        assert wrong.value.error.code == -32602 and "arguments.id must be a string" in wrong.value.error.message
        with pytest.raises(MCPError) as extra:
            await session.call_tool("health", {"refresh": True, "verbose": 1})
        assert "unknown field 'verbose'" in extra.value.error.message
        with pytest.raises(MCPError) as missing:
            await session.read_resource("hive://nothing")
        assert missing.value.error.code == -32002
        off = await session.call_tool("list_swarms", {})  # the hive-mind is off in this daemon
        assert off.is_error and "hive_mind" in off.content[0].text  # type: ignore[union-attr]
        nowhere = await session.call_tool("actor_tree", {"path": "root/nope"})
        assert nowhere.is_error and "root/nope" in nowhere.content[0].text  # type: ignore[union-attr]
        unplaced = await session.call_tool("layout_snapshot", {})
        assert unplaced.is_error and "node" in unplaced.content[0].text  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, daemon.tree.stop_child, "root/health")
        with pytest.raises(MCPError) as down:
            await session.read_resource("hive://health")
        assert down.value.error.code == -32603 and "cannot be read now" in down.value.error.message


async def _post(d: Daemon, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with d.session.post(f"{d.url}/mcp", data=json.dumps(body), headers={**base, **(headers or {})}) as r:
        text = await r.text()
        return r.status, r.headers, json.loads(text) if text else None


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "raw"}}}


async def test_sessions_versions_and_http_errors(daemon: Daemon) -> None:
    status, headers, body = await _post(daemon, INIT)
    assert status == 200 and body["result"]["protocolVersion"] == "2025-03-26"
    session_id = headers["Mcp-Session-Id"]
    status, _, body = await _post(daemon, {**INIT, "params": {"protocolVersion": "1999-01-01"}})
    assert body["result"]["protocolVersion"] == "2025-11-25"  # the newest both might speak
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert (await _post(daemon, ping))[0] == 400  # no session id
    assert (await _post(daemon, ping, {"Mcp-Session-Id": "made-up"}))[0] == 404
    status, _, body = await _post(daemon, ping, {"Mcp-Session-Id": session_id,
                                                 "MCP-Protocol-Version": "2099-01-01"})
    assert status == 400 and "not supported" in body["error"]["message"]
    assert (await _post(daemon, ping, {"Mcp-Session-Id": session_id}))[2]["result"] == {}
    status, _, body = await _post(daemon, {"jsonrpc": "2.0", "id": 3, "method": "prompts/list"},
                                  {"Mcp-Session-Id": session_id})
    assert body["error"]["code"] == -32601
    assert (await _post(daemon, [ping], {"Mcp-Session-Id": session_id}))[0] == 400  # a batch
    async with daemon.session.post(f"{daemon.url}/mcp", data=b"{nope",
                                   headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == -32700
    status, _, body = await _post(daemon, ping, {"Mcp-Session-Id": session_id,
                                                 "MCP-Protocol-Version": "2025-11-25"})
    assert status == 400 and "not this session's" in body["error"]["message"]
    for bad_id in ([1], {"a": 1}, True, 1.5):
        status, _, body = await _post(daemon, {**ping, "id": bad_id}, {"Mcp-Session-Id": session_id})
        assert status == 400 and "id must be" in body["error"]["message"], bad_id
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": [1]}}
    assert (await _post(daemon, cancel, {"Mcp-Session-Id": session_id}))[0] == 202
    stream = await daemon.session.get(f"{daemon.url}/mcp", headers={
        "Mcp-Session-Id": session_id, "Accept": "text/event-stream"})
    assert stream.status == 200
    async with daemon.session.get(f"{daemon.url}/mcp", headers={
            "Mcp-Session-Id": session_id, "Accept": "text/event-stream"}) as second:
        assert second.status == 409
    async with daemon.session.delete(f"{daemon.url}/mcp", headers={"Mcp-Session-Id": session_id}) as r:
        assert r.status == 204
    async with asyncio.timeout(2):  # the open stream ends with its session, not 15 s later
        assert await stream.read() == b""
    stream.close()
    assert (await _post(daemon, ping, {"Mcp-Session-Id": session_id}))[0] == 404  # ended
    status, _, _ = await _post(daemon, ping, {"Origin": "http://evil.example"})
    assert status == 403


async def test_an_idle_session_expires() -> None:
    d = await start_daemon(mcp_session_ttl_s=1.0)
    try:
        status, headers, _ = await _post(d, INIT)
        await asyncio.sleep(1.5)
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        status, _, body = await _post(d, ping, {"Mcp-Session-Id": headers["Mcp-Session-Id"]})
        assert status == 404 and "expired" in body["error"]["message"]
    finally:
        await d.stop()


async def test_with_an_api_token_every_call_needs_it() -> None:
    d = await start_daemon(api_token="mcp-test-api-token-0123456789")
    try:
        status, _, _ = await _post(d, INIT)
        assert status == 401
        async with d.session.get(f"{d.url}/mcp", headers={"Accept": "text/event-stream"}) as r:
            assert r.status == 401
        async with client(d, {"Authorization": "Bearer mcp-test-api-token-0123456789"}) as session:
            assert {t.name for t in (await session.list_tools()).tools} == OWN_TOOLS
    finally:
        await d.stop()


# the SDK warns that the 2026-07-28 revision drops resources/subscribe; 2025-11-25 has it
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_a_subscriber_hears_the_health_change_when_an_actor_is_killed(daemon: Daemon) -> None:
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    async with client(daemon, on_message=on_message) as session:
        await session.subscribe_resource("hive://health")
        await session.subscribe_resource("hive://actors")
        await asyncio.sleep(1.0)  # the first comparison is the baseline
        assert updates == []
        await asyncio.get_running_loop().run_in_executor(None, daemon.tree.kill, "root/gpu_layout")
        with anyio.fail_after(15):
            while not {"hive://health", "hive://actors"} <= set(updates):
                await asyncio.sleep(0.1)


@pytest.fixture
async def swarm_daemon(claude_flow: list[str], tmp_path: Path) -> AsyncIterator[Daemon]:
    """The hive-mind on the real claude-flow CLI (the MCP pool too)."""
    d = await start_daemon(agents_config(tmp_path), state_dir=str(tmp_path / "state"))
    yield d
    await d.stop()


async def test_a_spawn_reports_progress_and_the_swarm_tools_follow_it(swarm_daemon: Daemon) -> None:
    seen: list[tuple[float, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, message))

    async with client(swarm_daemon) as session:
        result = await session.call_tool("spawn_swarm", {"task": "write a haiku"},
                                         progress_callback=progress)
        assert not result.is_error, result.content
        swarm = result.structured_content["swarm"]
        assert swarm["status"] == "active" and len(swarm["workers"]) >= 1
        assert seen[0][0] == 0 and "spawning" in (seen[0][1] or "")
        assert seen[-1][1] == f"{swarm['id']}: active"
        assert all(a[0] < b[0] for a, b in itertools.pairwise(seen)), seen  # it only grows
        listed = await session.call_tool("list_swarms", {"status": "active"})
        assert [s["id"] for s in listed.structured_content["swarms"]] == [swarm["id"]]
        got = await session.call_tool("get_swarm", {"id": swarm["id"]})
        assert got.structured_content["swarm"]["task"] == "write a haiku"
        agents = await session.call_tool("list_agents", {"swarm": swarm["id"]})
        assert not agents.is_error
        tools = {t.name for t in (await session.list_tools()).tools}
        assert "claude_flow_agent_list" in tools and "claude_flow_terminal_execute" not in tools
        forwarded = await session.call_tool("claude_flow_agent_list", {})
        assert not forwarded.is_error, forwarded.content
        with pytest.raises(MCPError, match="allow-list"):
            await session.call_tool("claude_flow_terminal_execute", {"command": "id"})
        stopped = await session.call_tool("stop_swarm", {"id": swarm["id"]})
        assert stopped.structured_content["swarm"]["status"] == "stopping"


async def test_a_cancelled_call_ends_on_the_server(swarm_daemon: Daemon) -> None:
    store = swarm_daemon.app[MCP_SESSIONS]
    async with client(swarm_daemon) as session:
        with anyio.move_on_after(0.5):
            await session.call_tool("spawn_swarm", {"task": "cut short"})
        # the server's call ends at once, while the swarm (a spawn takes seconds) still spawns
        await asyncio.get_running_loop().run_in_executor(
            None, wait_for, lambda: all(not s.in_flight for s in store._sessions.values()), 1.0)
        listed = await session.call_tool("list_swarms", {})  # the session goes on
        assert [s["status"] for s in listed.structured_content["swarms"]] == ["spawning"]
