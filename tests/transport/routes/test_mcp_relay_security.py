"""The open doors of issue 10 that need the real claude-flow: the relay ran shell commands for
anyone, and any web page could make swarms. Each test here failed before the fix."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import Daemon, agents_config, receive, start_daemon
from transport.relay_policy import DEFAULT_RELAY_TOOLS

API_TOKEN = "api-token-for-the-tests-0123"


async def rpc(ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(json.dumps(message))
    msg = await receive(ws, 15)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)  # type: ignore[no-any-return]


async def run_a_command_through_the_relay(d: Daemon, marker: Path) -> list[dict[str, Any]]:
    """What the attacker did: open a terminal, run a command in it."""
    async with d.session.ws_connect(f"{d.ws_url}/ws/mcp-relay") as ws:
        created = await rpc(ws, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                 "params": {"name": "terminal_create", "arguments": {}}})
        executed = await rpc(ws, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                  "params": {"name": "terminal_execute",
                                             "arguments": {"command": f"touch {marker}; id"}}})
    return [created, executed]


async def test_the_relay_refuses_terminal_execute_and_nothing_runs(
        agents_daemon: Daemon, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    created, executed = await run_a_command_through_the_relay(agents_daemon, marker)
    for answer in (created, executed):
        assert answer["error"]["code"] == -32001
        assert "allow-list" in answer["error"]["message"] and "relay_tools" in answer["error"]["message"]
    await asyncio.sleep(0.5)
    assert not marker.exists()
    async with agents_daemon.session.ws_connect(f"{agents_daemon.ws_url}/ws/mcp-relay") as ws:
        listing = await rpc(ws, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
        names = {t["name"] for t in listing["result"]["tools"]}
        assert names == set(DEFAULT_RELAY_TOOLS) and "terminal_execute" not in names
        refused = await rpc(ws, {"jsonrpc": "2.0", "id": 4, "method": "resources/list"})
        assert refused["error"]["code"] == -32001 and "policy" in refused["error"]["message"]
        allowed = await rpc(ws, {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                                 "params": {"name": "agent_list", "arguments": {}}})
        assert "result" in allowed
        huge = await rpc(ws, {"jsonrpc": "2.0", "id": 6, "method": "tools/call",
                              "params": {"name": "A" * 100_000, "arguments": {}}})
        assert len(huge["error"]["message"]) < 300  # a refusal quotes a bounded part of the name


async def test_a_widened_allow_list_does_run_the_command(claude_flow: list[str], tmp_path: Path) -> None:
    """The control for the test above: the same calls, with the terminal tools listed on
    purpose, do run, so an absent marker there means the relay refused, not that the command
    failed to run."""
    tools = ", ".join(f'"{t}"' for t in (*DEFAULT_RELAY_TOOLS, "terminal_create", "terminal_execute"))
    d = await start_daemon(agents_config(tmp_path) + f"[server]\nrelay_tools = [{tools}]\n")
    try:
        marker = tmp_path / "ran"
        created, executed = await run_a_command_through_the_relay(d, marker)
        assert "result" in created and "result" in executed, (created, executed)
        assert "uid=" in executed["result"]["content"][0]["text"]
        assert marker.exists()
    finally:
        await d.stop()


async def test_a_cross_site_text_plain_post_makes_no_swarm(agents_daemon: Daemon) -> None:
    d = agents_daemon
    sessions = d.state / "sessions"  # type: ignore[attr-defined]
    body = '{"task": "made by a web page"}'
    async with d.session.post(f"{d.url}/api/swarms", data=body, headers={
            "Content-Type": "text/plain", "Origin": "http://evil.example"}) as r:
        assert r.status == 403
    async with d.session.post(f"{d.url}/api/swarms", data=body,
                              headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 415
    async with d.session.get(f"{d.url}/api/swarms?refresh=true") as r:
        assert (await r.json())["total"] == 0
    assert not sessions.exists() or not any(sessions.iterdir())


async def test_with_a_token_swarm_changes_need_it(claude_flow: list[str], tmp_path: Path) -> None:
    d = await start_daemon(agents_config(tmp_path), api_token=API_TOKEN)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    try:
        async with d.session.post(f"{d.url}/api/swarms", json={"task": "t"}) as r:
            assert r.status == 401
        async with d.session.post(f"{d.url}/api/swarms", json={"task": "t"}, headers=auth) as r:
            assert r.status in (201, 202), await r.text()
            session_id = (await r.json())["id"]
        async with d.session.delete(f"{d.url}/api/swarms/{session_id}") as r:
            assert r.status == 401
        async with asyncio.timeout(60):  # reading needs no token
            while True:
                async with d.session.get(f"{d.url}/api/swarms/{session_id}") as r:
                    if (await r.json())["status"] == "active":
                        break
                await asyncio.sleep(0.1)
        async with d.session.delete(f"{d.url}/api/swarms/{session_id}", headers=auth) as r:
            assert r.status in (200, 202), await r.text()
        async with d.session.ws_connect(f"{d.ws_url}/ws/mcp-relay",
                                        headers=auth) as ws:  # a token at the upgrade
            answer = await rpc(ws, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                    "params": {"name": "agent_list", "arguments": {}}})
            assert "result" in answer
    finally:
        await d.stop()
