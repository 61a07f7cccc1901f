"""``/ws/mcp-relay``, ``/api/agents`` and ``/api/swarms`` on a real server, with real
claude-flow servers behind the MCP pool and the real claude-flow CLI behind the hive-mind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actors.graph import AGENT_FLAG
from tests.conftest import (
    JSON,
    Daemon,
    decode_by_spec,
    receive,
    receive_binary,
    receive_json,
    server_pids,
    start_daemon,
)
from transport.relay_policy import DEFAULT_RELAY_TOOLS
from transport.routes import swarms as swarm_routes


async def rpc(ws: aiohttp.ClientWebSocketResponse, message: Any, timeout: float = 10) -> dict[str, Any]:
    await ws.send_str(message if isinstance(message, str) else json.dumps(message))
    msg = await receive(ws, timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)  # type: ignore[no-any-return]


async def test_relay_round_trip_keeps_the_client_id(agents_daemon: Daemon) -> None:
    d = agents_daemon
    async with d.session.ws_connect(f"{d.ws_url}/ws/mcp-relay") as ws:
        init = await rpc(ws, {"jsonrpc": "2.0", "id": "init-1", "method": "initialize",
                              "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                                         "clientInfo": {"name": "t", "version": "1"}}})
        assert init["id"] == "init-1" and init["result"]["protocolVersion"], init
        await ws.send_json({"jsonrpc": "2.0", "method": "notifications/initialized"})
        tools = await rpc(ws, {"jsonrpc": "2.0", "id": 41, "method": "tools/list"})
        names = {t["name"] for t in tools["result"]["tools"]}
        assert tools["id"] == 41 and names == set(DEFAULT_RELAY_TOOLS)  # the allowed ones alone
        call = await rpc(ws, {"jsonrpc": "2.0", "id": "abc", "method": "tools/call",
                              "params": {"name": "swarm_init",
                                         "arguments": {"topology": "star", "maxAgents": 3}}})
        assert call["id"] == "abc"
        assert json.loads(call["result"]["content"][0]["text"])["success"] is True
        unknown = await rpc(ws, {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                 "params": {"name": "nope", "arguments": {}}})
        assert unknown["id"] == 7 and unknown["error"]["code"] == -32001
        assert "allow-list" in unknown["error"]["message"]


async def test_relay_malformed_input_gets_jsonrpc_errors(agents_daemon: Daemon) -> None:
    d = agents_daemon
    async with d.session.ws_connect(f"{d.ws_url}/ws/mcp-relay") as ws:
        assert (await rpc(ws, "{oops"))["error"]["code"] == -32700
        bad = await rpc(ws, {"foo": 1})
        assert bad["error"]["code"] == -32600 and bad["id"] is None
        bad = await rpc(ws, {"jsonrpc": "2.0", "id": 3, "method": 12})
        assert bad["error"]["code"] == -32600 and bad["id"] == 3
        assert (await rpc(ws, "[]"))["error"]["code"] == -32600
        assert (await rpc(ws, "[" * 50_000 + "]" * 50_000))["error"]["code"] == -32700
        assert (await rpc(ws, '{"jsonrpc": "2.0", "id": NaN, "method": "ping"}'))["error"]["code"] == -32700
        batch = [{"jsonrpc": "2.0", "method": "notifications/x"}] * 101
        assert "1 to 100" in (await rpc(ws, batch))["error"]["message"]
        await ws.send_bytes(b"\x00\x01")
        assert (json.loads((await receive(ws, 5)).data))["error"]["code"] == -32600
        ok = await rpc(ws, {"jsonrpc": "2.0", "id": 9, "method": "tools/list"})
        assert ok["id"] == 9 and "result" in ok  # still usable


async def test_relay_server_killed_mid_call_is_a_clear_error(agents_daemon: Daemon) -> None:
    d = agents_daemon
    async with d.session.ws_connect(f"{d.ws_url}/ws/mcp-relay") as ws:
        await rpc(ws, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        await ws.send_json({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        for pid in server_pids(d.state / "mcp"):  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)
        answers = []
        for _ in range(3):
            reply = await rpc(ws, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
            answers.append(reply)
            if "error" in reply:
                break
        assert any("error" in a and a["error"]["code"] == -32000 for a in answers), answers
        # the relay itself stays up, and so does the daemon
        async with d.session.get(f"{d.url}/api/health") as r:
            assert r.status in (200, 503)


async def test_spawned_agent_appears_on_wss_and_api_agents(agents_daemon: Daemon) -> None:
    d = agents_daemon
    async with d.session.ws_connect(f"{d.ws_url}/ws/mcp-relay") as relay, \
            d.session.ws_connect(f"{d.ws_url}/wss") as wss:
        await receive_json(wss, "connection_established")
        await wss.send_json({"type": "subscribe_position_updates", "data": {"interval": 0}})
        await receive_json(wss, "subscription_confirmed")
        spawned = await rpc(relay, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                    "params": {"name": "agent_spawn",
                                               "arguments": {"agentType": "coder"}}})
        agent_id = json.loads(spawned["result"]["content"][0]["text"])["agentId"]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            records = decode_by_spec(await receive_binary(wss))
            if any(r[0] & AGENT_FLAG for r in records):
                break
        else:
            raise AssertionError("no agent node on /wss")
        await wss.send_json({"type": "requestBotsGraph"})
        bots = await receive_json(wss, "botsGraphUpdate")
        assert [n["agentId"] for n in bots["data"]["nodes"]] == [agent_id]
    async with d.session.get(f"{d.url}/api/agents") as r:
        body = await r.json()
    assert r.status == 200 and [a["id"] for a in body["agents"]] == [agent_id]
    assert body["agents"][0]["type"] == "coder"


async def test_swarm_lifecycle_over_http(agents_daemon: Daemon) -> None:
    d = agents_daemon
    # shell syntax stays data, and a leading "--" is no flag to the CLI
    task = '--help analyse "$(touch /tmp/hive-pwned)"; rm -rf / && echo done'
    async with d.session.post(f"{d.url}/api/swarms",
                              json={"task": task, "priority": "high", "strategy": "mesh",
                                    "max_agents": 3}) as r:
        assert r.status == 201, await r.text()
        created = await r.json()
    session_id = created["id"]
    assert created["status"] in ("spawning", "active")
    assert created["task"] == task and created["priority"] == "high"  # data, never shell
    assert not os.path.exists("/tmp/hive-pwned")
    assert created["topology"] == "mesh" and created["agentCount"] == 2
    async with d.session.get(f"{d.url}/api/swarms") as r:
        assert session_id in [s["id"] for s in (await r.json())["swarms"]]
    async with d.session.get(f"{d.url}/api/swarms/{session_id}") as r:
        assert r.status == 200 and (await r.json())["status"] == "active"
    async with d.session.delete(f"{d.url}/api/swarms/{session_id}") as r:
        assert r.status == 200 and (await r.json())["status"] == "completed"
    # the workers were announced to the data plane: the MCP poll shows them
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        async with d.session.get(f"{d.url}/api/agents") as r:
            if (await r.json())["total"] >= 2:
                break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the swarm's workers never showed in telemetry")


async def test_swarm_bad_requests(agents_daemon: Daemon) -> None:
    d = agents_daemon
    cases = [
        ({}, "task must be a non-empty string"),
        ({"task": "   "}, "task must be a non-empty string"),
        ({"task": "x" * 10_001}, "limit is 10000"),
        ({"task": "x", "priority": "urgent"}, "priority must be one of"),
        ({"task": "x", "max_agents": 0}, "max_agents"),
        ({"task": "x", "strategy": "chaos"}, "strategy must be one of"),
        ({"task": "x", "colour": "red"}, "unknown field(s): colour"),
        ({"task": "x", "priority": 5}, "priority must be a string"),
        ({"task": "x", "strategy": []}, "strategy must be one of"),
        ({"task": "\ud800"}, "lone surrogate"),
    ]
    async with d.session.get(f"{d.url}/api/swarms") as r:
        before = (await r.json())["total"]
    for body, message in cases:
        async with d.session.post(f"{d.url}/api/swarms", json=body) as r:
            assert r.status == 400, body
            assert message in (await r.json())["error"], body
    async with d.session.get(f"{d.url}/api/swarms") as r:
        assert (await r.json())["total"] == before  # no half-made session left behind
    for payload in (b"{no", b"[" * 50_000 + b"]" * 50_000):
        async with d.session.post(f"{d.url}/api/swarms", data=payload, headers=JSON) as r:
            assert r.status == 400
    for bad_id in ("0b5c4c49-3a1e-4c5e-9a3b-1f2e3d4c5b6a", "../../etc"):
        async with d.session.get(f"{d.url}/api/swarms/{bad_id}") as r:
            assert r.status == 404
        async with d.session.delete(f"{d.url}/api/swarms/{bad_id}") as r:
            assert r.status == 404


async def test_a_spawn_that_waited_too_long_is_refused_and_creates_nothing(
        agents_daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spawns queue behind each other; one that could not begin in time is a 503 that made no
    swarm (so a client's retry is no duplicate), never a 5xx for a swarm that exists."""
    d = agents_daemon
    async with d.session.get(f"{d.url}/api/swarms") as r:
        before = (await r.json())["total"]
    monkeypatch.setattr(swarm_routes, "SPAWN_QUEUE_S", -1.0)  # its start deadline has passed
    async with d.session.post(f"{d.url}/api/swarms", json={"task": "too late"}) as r:
        assert r.status == 503 and r.headers["Retry-After"] == "5"
        assert "no swarm was created" in (await r.json())["error"]
    async with d.session.get(f"{d.url}/api/swarms?refresh=true") as r:
        assert (await r.json())["total"] == before
    monkeypatch.setattr(swarm_routes, "SPAWN_QUEUE_S", 60.0)
    async with d.session.post(f"{d.url}/api/swarms", json={"task": "in time"}) as r:
        assert r.status == 201


async def test_hive_mind_restart_loses_no_swarm(agents_daemon: Daemon) -> None:
    d = agents_daemon
    async with d.session.post(f"{d.url}/api/swarms", json={"task": "survive a crash"}) as r:
        session_id = (await r.json())["id"]
    await d.tree.control_async("kill", "root/hive_mind")
    async with d.session.get(f"{d.url}/api/swarms") as r:
        swarms = (await r.json())["swarms"]
    assert [s["id"] for s in swarms] == [session_id]
    assert swarms[0]["task"] == "survive a crash"
    assert d.tree.describe("root/hive_mind")["incarnation"] == 2


async def test_unreachable_docker_backend_is_503(tmp_path: Path) -> None:
    config = f"""
[actors.mcp]
enabled = false
[actors.hive_mind]
backend = "docker"
docker_url = "unix://{tmp_path / 'no-such.sock'}"
retries = 0
"""
    d = await start_daemon(config)
    try:
        async with d.session.post(f"{d.url}/api/swarms", json={"task": "x"}) as r:
            assert r.status == 503
            assert "unavailable" in (await r.json())["error"]
        async with d.session.get(f"{d.url}/api/health?refresh=true") as r:
            body = await r.json()
        assert body["components"]["hive_mind"]["health"] == "degraded"
        assert body["docker_health"] in ("unavailable", "degraded")
    finally:
        await d.stop()
