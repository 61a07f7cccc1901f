"""A follower forwards the leader's requests over NATS (issue 22): spawns, stops and graph
loads made on any daemon run on the leader, with the leader's status codes, errors and
Idempotency-Key replays; with nobody leading a change gets 503 and a read this daemon's own
copy. Two real daemons with the real claude-flow CLI, on a real NATS server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.actors.cluster.test_actor import TTL, Node, cluster_config, leader_of, settled, until
from tests.conftest import DaemonProcess, cli_wrapper, receive_json, spawn
from tests.peers.nats import NatsServer

NAMES = ("north", "south")


TOKEN = "cluster-test-token-0001"


def swarm_config(name: str, nats_url: str, cli: list[str], state: Path, token: str = "") -> str:
    text = cluster_config(name, nats_url)
    text = text.replace("[actors.hive_mind]\nenabled = false\n",
                        f"[actors.hive_mind]\ncli = {json.dumps(cli)}\nrefresh_interval_s = 0.2\n")
    server = f'[server]\nstate_dir = "{state}"\n' + (f'api_token = "{token}"\n' if token else "")
    return server + text


async def start_pair(nats_url: str, cli: list[str], folder: Path,
                     token: str = "") -> AsyncIterator[list[Node]]:
    nodes = []
    for name in NAMES:
        (folder / name).mkdir()
        (folder / name / "hive.toml").write_text(
            swarm_config(name, nats_url, cli, folder / name / "state", token))
        nodes.append((name, DaemonProcess(spawn("--config", str(folder / name / "hive.toml"),
                                                cwd=folder / name))))
    try:
        ready = [await asyncio.to_thread(p.wait_event, "daemon.ready", 180) for _, p in nodes]
        yield [Node(name, p, f"http://127.0.0.1:{r['port']}")
               for (name, p), r in zip(nodes, ready, strict=True)]
    finally:
        for _, p in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGCONT)
        await asyncio.gather(*(asyncio.to_thread(p.stop) for _, p in nodes))


@pytest.fixture
def token() -> str:
    return ""


@pytest.fixture
async def pair(nats_server: NatsServer, claude_flow: list[str], tmp_path: Path,
               token: str) -> AsyncIterator[list[Node]]:
    async for nodes in start_pair(nats_server.url, claude_flow, tmp_path, token):
        yield nodes


async def copied(node: Node) -> bool:
    """Whether ``node`` (a follower) holds a copy of the leader's swarm table."""
    return bool(node.process.events("cluster.table_copied"))


async def call(session: aiohttp.ClientSession, method: str, url: str,
               **kwargs: Any) -> tuple[int, Any, Any]:
    async with session.request(method, url, **kwargs) as r:
        return r.status, await r.json(), r.headers


def sessions(folder: Path) -> list[str]:
    path = folder / "state" / "sessions"
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


async def leader_and_follower(session: aiohttp.ClientSession,
                              nodes: list[Node]) -> tuple[Node, Node]:
    views = await until(lambda: in_charge(session, nodes), 30, "a leader in charge")
    leader = next(n for n in nodes if n.name == leader_of(views))
    return leader, next(n for n in nodes if n is not leader)


async def in_charge(session: aiohttp.ClientSession, nodes: list[Node]) -> dict[str, Any] | None:
    """Every node's cluster view once they agree and the leader's hive-mind runs the swarms."""
    views = await settled(session, nodes, NAMES)
    if views is None:
        return None
    leader = next(n for n in nodes if n.name == leader_of(views))
    async with session.get(f"{leader.url}/api/health?refresh=true") as r:
        detail = (await r.json())["components"]["hive_mind"]["detail"]
    return views if detail["docker_health"] != "standby" else None


async def test_a_follower_forwards_spawns_stops_and_graphs_to_the_leader(
        pair: list[Node], tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        leader, follower = await leader_and_follower(session, pair)
        key = {"Idempotency-Key": "forward-me-1"}
        pushes = await session.ws_connect(follower.url.replace("http", "ws") + "/ws/hybrid-health")
        await until(lambda: copied(follower), 20, "the follower's copy of the table")
        status, first, headers = await call(session, "POST", f"{follower.url}/api/swarms",
                                            json={"task": "forwarded"}, headers=key)
        assert status == 202, first
        assert headers["X-Hive-Leader"] == leader.name
        assert headers["Location"] == f"/api/swarms/{first['id']}"
        # read your writes: at once, from the follower's own copy of the table
        status, read, headers = await call(session, "GET", f"{follower.url}{headers['Location']}")
        assert status == 200 and read["id"] == first["id"] and "X-Hive-Leader" not in headers
        status, listing, _ = await call(session, "GET", f"{follower.url}/api/swarms?refresh=true")
        assert status == 200 and listing["refreshed"] is True  # a re-read: the leader's
        # a retry through the follower replays the leader's first answer
        status, again, headers = await call(session, "POST", f"{follower.url}/api/swarms",
                                            json={"task": "forwarded"}, headers=key)
        assert status == 202 and again["id"] == first["id"]
        assert headers["Idempotent-Replayed"] == "true"
        # and the same key with another body is the leader's 422, a bad body its 400
        status, body, _ = await call(session, "POST", f"{follower.url}/api/swarms",
                                     json={"task": "another"}, headers=key)
        assert status == 422 and "different request" in body["error"]
        status, body, _ = await call(session, "POST", f"{follower.url}/api/swarms",
                                     json={"task": 5})
        assert status == 400 and "task" in body["error"]
        # the swarm is the leader's: its CLI ran there, not here; reads agree on both daemons

        async def active() -> Any:
            s, body, _ = await call(session, "GET", f"{follower.url}/api/swarms/{first['id']}")
            return body if s == 200 and body["status"] == "active" else None

        await until(active, 120, "the swarm active, read through the follower")
        # the follower's own health socket was told, from its copy of the leader's table
        seen: list[str] = []
        while "active" not in seen:
            update = await receive_json(pushes, "session_update", timeout=20)
            if update["data"]["id"] == first["id"]:
                seen.append(update["data"]["status"])
        assert seen[0] == "spawning", seen
        await pushes.close()
        assert sessions(tmp_path / leader.name) == [first["id"]]
        assert sessions(tmp_path / follower.name) == []
        for node in pair:
            status, listing, _ = await call(session, "GET", f"{node.url}/api/swarms")
            assert status == 200 and [s["id"] for s in listing["swarms"]] == [first["id"]]
        # a stop made on the follower
        status, body, _ = await call(session, "DELETE", f"{follower.url}/api/swarms/{first['id']}")
        assert status in (200, 202), body
        # a graph loaded on the follower lands in the leader's layout
        graph = {"nodes": [{"id": i} for i in range(50)],
                 "edges": [{"source": i, "target": (i + 1) % 50} for i in range(50)]}
        status, body, _ = await call(session, "PUT", f"{follower.url}/api/graph", json=graph)
        assert status == 200 and body["loaded"]["nodes"] == 50, body
        for node, expected in ((leader, 50), (follower, 0)):
            async with session.get(f"{node.url}/api/health?refresh=true") as r:
                detail = (await r.json())["components"]["gpu_layout"]["detail"]
            assert detail["nodes"] == expected, (node.name, detail)


async def test_with_nobody_leading_a_change_is_refused_and_a_read_served_from_here(
        pair: list[Node], nats_server: NatsServer) -> None:
    async with aiohttp.ClientSession() as session:
        await until(lambda: in_charge(session, pair), 30, "a leader in charge")
        status, made, _ = await call(session, "POST", f"{pair[0].url}/api/swarms",
                                     json={"task": "kept everywhere"})
        assert status == 202

        async def everywhere() -> bool:
            for node in pair:
                async with session.get(f"{node.url}/api/health?refresh=true") as r:
                    detail = (await r.json())["components"]["hive_mind"]["detail"]
                if detail["sessions"] != 1:
                    return False
            return True

        await until(everywhere, 30, "the swarm in every daemon's table")
        nats_server.kill()

        async def leaderless() -> bool:
            views = [await n.cluster(session) for n in pair]
            return all(v is not None and v["role"] == "follower" and v["fault"] for v in views)

        await until(leaderless, 3 * TTL + 10, "nobody leads")
        for node in pair:
            status, body, headers = await call(session, "POST", f"{node.url}/api/swarms",
                                               json={"task": "nowhere to run"})
            assert status == 503 and headers["Retry-After"], body
            assert "not connected to NATS" in body["error"] or "no daemon leads" in body["error"], body
            status, body, headers = await call(session, "GET", f"{node.url}/api/swarms")
            assert status == 200 and headers["X-Hive-Leader"].startswith("none"), body
            # what it has: the leader's own table, or a follower's copy of it
            assert [s["id"] for s in body["swarms"]] == [made["id"]], (node.name, body)


@pytest.fixture
async def slow_pair(nats_server: NatsServer, claude_flow: list[str],
                    tmp_path: Path) -> AsyncIterator[list[Node]]:
    """Two daemons whose CLI takes 4 s over the hive-mind's spawn stage."""
    cli, _ = cli_wrapper(tmp_path / "cli", claude_flow, slow_stage="spawn", slow_s=4)
    async for nodes in start_pair(nats_server.url, cli, tmp_path):
        yield nodes


async def test_a_spawn_in_flight_when_the_leader_dies_is_finished_once_and_no_record_is_lost(
        slow_pair: list[Node], tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        leader, survivor = await leader_and_follower(session, slow_pair)
        status, done, headers = await call(session, "POST", f"{survivor.url}/api/swarms",
                                           json={"task": "finished before"})
        assert status == 202 and headers["X-Hive-Kept"] == "true", (status, done)

        async def status_of(node: Node, sid: str) -> str | None:
            s, body, _ = await call(session, "GET", f"{node.url}/api/swarms/{sid}")
            return body.get("status") if s == 200 else None

        await until(lambda: _is(status_of(survivor, done["id"]), "active"), 60, "the first active")
        key = {"Idempotency-Key": "in-flight-1"}
        status, flying, headers = await call(session, "POST", f"{survivor.url}/api/swarms",
                                             json={"task": "in flight"}, headers=key)
        assert status == 202 and headers["X-Hive-Kept"] == "true"

        async def at_spawn_stage() -> bool:
            s, body, _ = await call(session, "GET", f"{survivor.url}/api/swarms/{flying['id']}")
            return s == 200 and body.get("stage") == "spawn"

        await until(at_spawn_stage, 30, "the spawn in its slow stage")
        os.kill(leader.process.pid, signal.SIGKILL)

        async def leads() -> bool:
            v = await survivor.cluster(session)
            return bool(v and v["role"] == "leader")

        await until(leads, TTL + 5, "the survivor leads")
        await until(lambda: _is(status_of(survivor, flying["id"]), "active"), 60,
                    "the spawn finished by the new leader")
        # once: one folder for it here, and a retry with its key is the same swarm
        assert flying["id"] in sessions(tmp_path / survivor.name)
        status, again, headers = await call(session, "POST", f"{survivor.url}/api/swarms",
                                            json={"task": "in flight"}, headers=key)
        assert status == 202 and again["id"] == flying["id"] and headers["Idempotent-Replayed"] == "true"
        # no record lost: the swarm that ran on the dead daemon is listed, failed, with why
        status, listing, _ = await call(session, "GET", f"{survivor.url}/api/swarms")
        by_id = {s["id"]: s for s in listing["swarms"]}
        assert set(by_id) == {done["id"], flying["id"]}, by_id
        assert by_id[done["id"]]["status"] == "failed"
        assert "folder is gone" in by_id[done["id"]]["error"]
        [taken] = survivor.process.events("cluster.swarms_taken")
        assert taken["records"] == 2
        assert [e["session"] for e in survivor.process.events("swarm.spawn_resumed")] == [flying["id"]]


async def _is(value: Any, wanted: str) -> bool:
    return (await value) == wanted


@pytest.mark.parametrize("token", [TOKEN])
async def test_an_mcp_tool_on_a_follower_runs_the_swarm_on_the_leader(
        pair: list[Node], tmp_path: Path) -> None:
    """Not only the HTTP API: a spawn asked of a follower's hive-mind (an MCP tool here, a voice
    command the same way) goes to the leader, and progress comes from the follower's copy.
    The daemons have an API token: the leader runs what its peers forward with its own."""
    from tests.transport.routes.test_mcp import client

    async with aiohttp.ClientSession() as session:
        leader, follower = await leader_and_follower(session, pair)
        await until(lambda: copied(follower), 20, "the follower's copy of the table")
    async with client(follower, headers={"Authorization": f"Bearer {TOKEN}"}) as mcp:  # type: ignore[arg-type]
        result = await mcp.call_tool("spawn_swarm", {"task": "asked of a follower"})
        assert not result.is_error, result.content
        swarm = result.structured_content["swarm"]
        assert swarm["status"] == "active", swarm
        stopped = await mcp.call_tool("stop_swarm", {"id": swarm["id"]})
        assert not stopped.is_error, stopped.content
    assert sessions(tmp_path / leader.name) == [swarm["id"]]
    assert sessions(tmp_path / follower.name) == []
