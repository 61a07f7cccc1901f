"""``/ws/mcp-relay`` and ``/api/agents`` on a real server, with real claude-flow servers
behind the MCP pool (the swarms' routes are in test_swarms.py)."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import aiohttp

from actors.graph import AGENT_FLAG
from tests.conftest import (
    Daemon,
    decode_by_spec,
    receive,
    receive_binary,
    receive_json,
    server_pids,
)
from transport.relay_policy import DEFAULT_RELAY_TOOLS


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


