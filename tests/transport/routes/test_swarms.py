"""``/api/swarms`` on a real server, with the real claude-flow CLI behind the hive-mind actor
(wrapped, where a test needs it, by a script that logs each run, slows or fails one stage).

The promises of issue 12: a spawn or stop is accepted at once (202) and done off the actor's
thread; reads start no process; every failure has a reason and leaves no folder; an
Idempotency-Key makes a retry answer with the first swarm; a full queue makes nothing (503);
a spawn caught by an actor kill is finished once, never twice; progress is pushed as
``session_update``; the workers show as members of their swarm."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actors.mcp.telemetry import announced_id, swarm_of
from tests.conftest import (
    JSON,
    Daemon,
    agents_config,
    cli_wrapper,
    receive,
    receive_json,
    start_daemon,
)


def config(state: Path, cli: list[str] | None = None, extra: str = "") -> str:
    text = agents_config(state)
    if cli is not None:
        text = text.replace("[actors.hive_mind]\n", f"[actors.hive_mind]\ncli = {json.dumps(cli)}\n")
    return text.replace("[actors.hive_mind]\n", f"[actors.hive_mind]\n{extra}")


async def wait_status(d: Daemon, session_id: str, wanted: tuple[str, ...],
                      timeout: float = 60) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            async with d.session.get(f"{d.url}/api/swarms/{session_id}") as r:
                session = await r.json()
            if session.get("status") in wanted:
                return session  # type: ignore[no-any-return]
            await asyncio.sleep(0.1)


async def post(d: Daemon, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any], Any]:
    async with d.session.post(f"{d.url}/api/swarms", json=body, headers=headers) as r:
        return r.status, await r.json(), r.headers


def folders(state: Path) -> list[str]:
    sessions = state / "sessions"
    return sorted(p.name for p in sessions.iterdir()) if sessions.is_dir() else []


async def test_a_spawn_is_accepted_at_once_pushed_as_it_goes_and_stopped(
        agents_daemon: Daemon) -> None:
    d = agents_daemon
    # shell syntax stays data, and a leading "--" is no flag to the CLI
    task = '--help analyse "$(touch /tmp/hive-pwned)"; rm -rf / && echo done'
    async with d.session.ws_connect(f"{d.ws_url}/ws/hybrid-health") as health:
        await receive_json(health, "initial_status")
        status, created, headers = await post(d, {"task": task, "priority": "high",
                                                  "strategy": "mesh", "max_agents": 3})
        assert status == 202 and created["status"] == "spawning" and created["stage"] == "queued"
        session_id = created["id"]
        assert headers["Location"] == f"/api/swarms/{session_id}"
        assert created["task"] == task and created["priority"] == "high"
        seen = []
        async with asyncio.timeout(60):
            while not seen or seen[-1] != "active":
                update = await receive_json(health, "session_update", timeout=60)
                if update["data"]["id"] == session_id:
                    seen.append(update["data"]["status"])
        assert seen[0] == "spawning" and "active" in seen
    assert not os.path.exists("/tmp/hive-pwned")
    active = await wait_status(d, session_id, ("active",))
    assert active["topology"] == "mesh" and active["agentCount"] == 2 and "error" not in active
    async with d.session.get(f"{d.url}/api/swarms") as r:
        assert session_id in [s["id"] for s in (await r.json())["swarms"]]
    async with d.session.delete(f"{d.url}/api/swarms/{session_id}") as r:
        assert r.status == 202 and (await r.json())["status"] == "stopping"
    assert (await wait_status(d, session_id, ("completed",)))["agentCount"] == 0


async def test_the_workers_show_as_members_of_their_swarm(agents_daemon: Daemon) -> None:
    d = agents_daemon
    _, created, _ = await post(d, {"task": "members", "strategy": "mesh"})
    session_id = created["id"]
    active = await wait_status(d, session_id, ("active",))
    workers = {w["id"] for w in active["workers"]}
    async with d.session.ws_connect(f"{d.ws_url}/wss") as wss:
        await receive_json(wss, "connection_established")
        async with asyncio.timeout(30):
            while True:
                await wss.send_json({"type": "requestBotsGraph"})
                graph = (await receive_json(wss, "botsGraphUpdate"))["data"]
                members = [n for n in graph["nodes"] if n["swarmId"] == session_id]
                if len(members) == len(workers):
                    break
                await asyncio.sleep(0.1)
    assert {n["agentId"] for n in members} == {announced_id(w, session_id) for w in workers}
    ids = {n["id"] for n in members}
    assert any(e["source"] in ids and e["target"] in ids for e in graph["edges"])  # linked
    async with d.session.get(f"{d.url}/api/agents") as r:
        agents = (await r.json())["agents"]
    assert sorted(a["swarmId"] for a in agents if swarm_of(a["id"]) == session_id) == \
        [session_id] * len(workers)
    # registered on the data plane itself (not only shown for a while): its own agent_list
    names: set[str] = set()
    wanted = {announced_id(w, session_id) for w in workers}
    for _ in range(12):  # a relay client sticks to one of the pool's servers: ask until both answered
        if wanted <= names:
            break
        async with d.session.ws_connect(f"{d.ws_url}/ws/mcp-relay") as relay:
            await relay.send_json({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                   "params": {"name": "agent_list", "arguments": {}}})
            answer = json.loads((await receive(relay, 10)).data)
            names |= {a["agentId"] for a in json.loads(answer["result"]["content"][0]["text"])["agents"]}
    assert wanted <= names


async def test_twenty_spawns_five_at_a_time_all_succeed(agents_daemon: Daemon) -> None:
    d = agents_daemon
    semaphore = asyncio.Semaphore(5)

    async def one(i: int) -> tuple[int, str]:
        async with semaphore:
            status, body, _ = await post(d, {"task": f"swarm {i}"})
            return status, body["id"]

    accepted = await asyncio.gather(*(one(i) for i in range(20)))
    assert [status for status, _ in accepted] == [202] * 20
    finals = await asyncio.gather(*(wait_status(d, sid, ("active", "failed"), timeout=180)
                                    for _, sid in accepted))
    assert [f["status"] for f in finals] == ["active"] * 20, [f.get("error") for f in finals]
    assert len(folders(d.state)) == 20  # type: ignore[attr-defined]


async def test_reads_start_no_process_and_a_thousand_copied_sessions_are_listed(
        claude_flow: list[str], tmp_path: Path) -> None:
    cli, log = cli_wrapper(tmp_path / "cli", claude_flow)
    d = await start_daemon(config(tmp_path, cli, "refresh_interval_s = 0.2\n"),
                           state_dir=str(tmp_path))
    try:
        _, created, _ = await post(d, {"task": "the original"})
        original = await wait_status(d, created["id"], ("active",))
        source = tmp_path / "sessions" / created["id"]
        copies = [str(uuid.uuid4()) for _ in range(999)]
        for name in copies:  # a session folder holds no copy of its own name
            shutil.copytree(source, tmp_path / "sessions" / name)
        runs_before = log.read_text().count("\n")
        async with asyncio.timeout(60):  # a refresh waits 5 s at most: a loaded machine needs more
            while True:
                async with d.session.get(f"{d.url}/api/swarms?refresh=true") as r:
                    listing = await r.json()
                if listing["total"] == 1000:
                    break
        assert {s["status"] for s in listing["swarms"]} == {"active"}
        assert {s["agentCount"] for s in listing["swarms"]} == {original["agentCount"]}
        assert {s["task"] for s in listing["swarms"]} == {"the original"}
        for name in copies[:50]:
            async with d.session.get(f"{d.url}/api/swarms/{name}") as r:
                assert r.status == 200 and (await r.json())["status"] == "active"
        async with d.session.get(f"{d.url}/api/swarms?limit=10&offset=990") as r:
            page = await r.json()
        assert len(page["swarms"]) == 10 and page["total"] == 1000
        assert log.read_text().count("\n") == runs_before  # not one CLI run for all that
    finally:
        await d.stop()


async def test_a_cli_that_fails_midway_leaves_no_folder_and_says_why(
        claude_flow: list[str], tmp_path: Path) -> None:
    cli, _ = cli_wrapper(tmp_path / "cli", claude_flow, fail_stage="spawn")
    d = await start_daemon(config(tmp_path, cli, "retries = 0\n"), state_dir=str(tmp_path))
    try:
        status, created, _ = await post(d, {"task": "doomed"})
        assert status == 202
        failed = await wait_status(d, created["id"], ("failed", "active"))
        assert failed["status"] == "failed"
        assert "injected failure at spawn" in failed["error"] and "exited 3" in failed["error"]
        assert folders(tmp_path) == []  # the init and task it had done are gone with the folder
        async with d.session.delete(f"{d.url}/api/swarms/{created['id']}") as r:
            assert r.status == 200 and (await r.json())["status"] == "deleted"  # forgotten
        async with d.session.get(f"{d.url}/api/swarms/{created['id']}") as r:
            assert r.status == 404
    finally:
        await d.stop()


async def test_an_idempotency_key_makes_a_retry_answer_with_the_first_swarm(
        agents_daemon: Daemon) -> None:
    d = agents_daemon
    key = {"Idempotency-Key": "retry-me-7"}
    first_status, first, _ = await post(d, {"task": "once"}, **key)
    again_status, again, headers = await post(d, {"task": "once"}, **key)
    assert first_status == again_status == 202 and again["id"] == first["id"]
    assert headers["Idempotent-Replayed"] == "true"
    status, body, _ = await post(d, {"task": "something else"}, **key)
    assert status == 422 and "different request" in body["error"]
    await wait_status(d, first["id"], ("active",))
    _, later, _ = await post(d, {"task": "once"}, **key)  # also once it is active
    assert later["id"] == first["id"]
    assert folders(d.state) == [first["id"]]  # type: ignore[attr-defined]
    status, body, _ = await post(d, {"task": "x"}, **{"Idempotency-Key": "has space"})
    assert status == 400


async def test_a_full_queue_refuses_and_makes_nothing(claude_flow: list[str], tmp_path: Path) -> None:
    cli, _ = cli_wrapper(tmp_path / "cli", claude_flow, slow_stage="init", slow_s=3)
    d = await start_daemon(config(tmp_path, cli, "max_queued = 1\n"), state_dir=str(tmp_path))
    try:
        status, first, _ = await post(d, {"task": "fills the queue"})
        assert status == 202
        status, body, headers = await post(d, {"task": "one too many"})
        assert status == 503 and headers["Retry-After"] == "5" and "nothing was made" in body["error"]
        async with d.session.get(f"{d.url}/api/swarms") as r:
            assert [s["id"] for s in (await r.json())["swarms"]] == [first["id"]]
        assert (await wait_status(d, first["id"], ("active",)))["agentCount"] == 2
    finally:
        await d.stop()


async def test_a_spawn_in_flight_when_the_actor_is_killed_is_finished_once(
        claude_flow: list[str], tmp_path: Path) -> None:
    cli, log = cli_wrapper(tmp_path / "cli", claude_flow, slow_stage="spawn", slow_s=2)
    d = await start_daemon(config(tmp_path, cli), state_dir=str(tmp_path))
    try:
        _, created, _ = await post(d, {"task": "survive a kill"})
        session_id = created["id"]
        async with asyncio.timeout(30):
            while not log.exists() or "hive-mind spawn" not in log.read_text():
                await asyncio.sleep(0.05)
        await d.tree.control_async("kill", "root/hive_mind")
        assert d.tree.describe("root/hive_mind")["incarnation"] == 2
        done = await wait_status(d, session_id, ("active", "failed"))
        assert done["status"] == "active" and done["agentCount"] == 2  # not 4: spawned once
        assert folders(tmp_path) == [session_id]
        assert log.read_text().count("hive-mind spawn") == 1
        async with d.session.get(f"{d.url}/api/swarms") as r:
            assert [s["id"] for s in (await r.json())["swarms"]] == [session_id]
    finally:
        await d.stop()


async def test_bad_requests_make_nothing(agents_daemon: Daemon) -> None:
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
    for body, message in cases:
        status, answer, _ = await post(d, body)
        assert status == 400 and message in answer["error"], body
    for payload in (b"{no", b"[" * 50_000 + b"]" * 50_000):
        async with d.session.post(f"{d.url}/api/swarms", data=payload, headers=JSON) as r:
            assert r.status == 400
    for bad_id in ("0b5c4c49-3a1e-4c5e-9a3b-1f2e3d4c5b6a", "../../etc"):
        async with d.session.get(f"{d.url}/api/swarms/{bad_id}") as r:
            assert r.status == 404
        async with d.session.delete(f"{d.url}/api/swarms/{bad_id}") as r:
            assert r.status == 404
    for query in ("status=nope", "limit=-1", "offset=x", "limit=%C2%B2", "limit=" + "9" * 5000):
        async with d.session.get(f"{d.url}/api/swarms?{query}") as r:
            assert r.status == 400, query
    async with d.session.get(f"{d.url}/api/swarms") as r:
        assert (await r.json())["total"] == 0
    assert folders(d.state) == []  # type: ignore[attr-defined]


async def test_a_stop_while_spawning_cancels_the_spawn_and_leaves_nothing(
        claude_flow: list[str], tmp_path: Path) -> None:
    cli, log = cli_wrapper(tmp_path / "cli", claude_flow, slow_stage="init", slow_s=2)
    d = await start_daemon(config(tmp_path, cli), state_dir=str(tmp_path))
    try:
        _, created, _ = await post(d, {"task": "not yet"})
        async with asyncio.timeout(30):
            while (await wait_status(d, created["id"], ("spawning",)))["stage"] != "init":
                await asyncio.sleep(0.05)
        async with d.session.delete(f"{d.url}/api/swarms/{created['id']}") as r:
            assert r.status == 202 and (await r.json())["status"] == "stopping"
        async with d.session.delete(f"{d.url}/api/swarms/{created['id']}") as r:
            assert r.status == 202  # asked again: the same answer
        done = await wait_status(d, created["id"], ("completed", "active", "failed"))
        assert done["status"] == "completed" and "stopped before its spawn finished" in done["error"]
        assert folders(tmp_path) == [] and "hive-mind spawn" not in log.read_text()
        async with d.session.delete(f"{d.url}/api/swarms/{created['id']}") as r:
            assert r.status == 200 and (await r.json())["status"] == "deleted"
        async with d.session.get(f"{d.url}/api/swarms/{created['id']}") as r:
            assert r.status == 404
    finally:
        await d.stop()


async def test_a_stopped_swarm_is_deleted_with_its_folder_and_record(
        agents_daemon: Daemon) -> None:
    d = agents_daemon
    _, created, _ = await post(d, {"task": "over and done"})
    await wait_status(d, created["id"], ("active",))
    async with d.session.delete(f"{d.url}/api/swarms/{created['id']}") as r:
        assert r.status == 202
    await wait_status(d, created["id"], ("completed",))
    async with d.session.delete(f"{d.url}/api/swarms/{created['id']}") as r:
        assert r.status == 200 and (await r.json())["status"] == "deleted"
    async with asyncio.timeout(30):
        while folders(d.state) or (d.state / "swarms" / f"{created['id']}.json").exists():  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
    async with d.session.get(f"{d.url}/api/swarms?refresh=true") as r:
        assert (await r.json())["total"] == 0


async def test_a_restart_of_the_actor_mid_spawn_finishes_it_once(
        claude_flow: list[str], tmp_path: Path) -> None:
    """A restart (unlike a kill) stops the incarnation: its jobs let go, their commands are
    killed with their process groups, and the next incarnation spawns the swarm once."""
    cli, log = cli_wrapper(tmp_path / "cli", claude_flow, slow_stage="spawn", slow_s=3)
    d = await start_daemon(config(tmp_path, cli), state_dir=str(tmp_path))
    try:
        _, created, _ = await post(d, {"task": "survive a restart"})
        session_id = created["id"]
        async with asyncio.timeout(30):
            while (await wait_status(d, session_id, ("spawning",)))["stage"] != "spawn":
                await asyncio.sleep(0.05)
        async with asyncio.timeout(30):  # the spawn command itself is under way
            while not log.exists() or "hive-mind spawn" not in log.read_text():
                await asyncio.sleep(0.05)
        async with d.session.ws_connect(f"{d.ws_url}/ws/hybrid-health") as health:
            await receive_json(health, "initial_status")
            await d.tree.control_async("restart", "root/hive_mind")
            done = await wait_status(d, session_id, ("active", "failed"), timeout=90)
            assert done["status"] == "active" and done["agentCount"] == 2, done
            seen = []
            while True:  # what the clients were told: never failed, never active without workers
                try:
                    update = await receive_json(health, "session_update", timeout=1)
                except (AssertionError, TimeoutError):
                    break
                seen.append((update["data"]["status"], update["data"]["agentCount"]))
        assert ("failed", 0) not in seen and ("active", 0) not in seen, seen
        assert folders(tmp_path) == [session_id]
        assert log.read_text().count("hive-mind spawn") == 2  # the cut one, and the one that ran
    finally:
        await d.stop()


async def test_a_restart_sends_no_update_for_sessions_that_did_not_change(
        agents_daemon: Daemon) -> None:
    d = agents_daemon
    _, created, _ = await post(d, {"task": "quiet"})
    await wait_status(d, created["id"], ("active",))
    async with d.session.ws_connect(f"{d.ws_url}/ws/hybrid-health") as health:
        await receive_json(health, "initial_status")
        await d.tree.control_async("restart", "root/hive_mind")
        with pytest.raises((AssertionError, TimeoutError)):
            await receive_json(health, "session_update", timeout=1.5)


async def test_an_unreachable_docker_backend_is_503(tmp_path: Path) -> None:
    text = f"""
[actors.mcp]
enabled = false
[actors.hive_mind]
backend = "docker"
docker_url = "unix://{tmp_path / 'no-such.sock'}"
retries = 0
"""
    d = await start_daemon(text)
    try:
        status, body, headers = await post(d, {"task": "x"})
        assert status == 503 and "unavailable" in body["error"] and headers["Retry-After"]
        async with d.session.get(f"{d.url}/api/health?refresh=true") as r:
            health = await r.json()
        assert health["components"]["hive_mind"]["health"] == "degraded"
        assert health["docker_health"] in ("unavailable", "degraded")
    finally:
        await d.stop()


async def test_session_updates_reach_every_health_client(agents_daemon: Daemon) -> None:
    d = agents_daemon
    clients = [await d.session.ws_connect(f"{d.ws_url}/ws/hybrid-health") for _ in range(3)]
    try:
        for ws in clients:
            await receive_json(ws, "initial_status")
        _, created, _ = await post(d, {"task": "broadcast"})
        for ws in clients:
            async with asyncio.timeout(60):
                while True:
                    msg = await receive(ws, 60)
                    assert msg.type == aiohttp.WSMsgType.TEXT
                    data = json.loads(msg.data)
                    if data["type"] == "session_update" and data["data"]["status"] == "active":
                        assert data["data"]["id"] == created["id"]
                        break
    finally:
        for ws in clients:
            await ws.close()
