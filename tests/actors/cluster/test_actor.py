"""Three real daemons (subprocesses) on a real NATS server: one leader, the same epoch and
peers everywhere, a follower taking over from a SIGKILLed leader, a SIGSTOPped leader that
steps down and writes nothing once resumed, and NATS killed and restarted (issue 22)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import nats
import numpy as np
import pytest

from actors.cluster.frames import read_part, sender_id
from actors.graph import KNOWLEDGE_FLAG
from tests.conftest import PROCESS_TOKEN, WITHOUT_AGENTS, DaemonProcess, V3BySpec, receive_binary, spawn
from tests.peers.nats import NatsServer
from transport.codec import RECORD

TTL = 2.0
NAMES = ("alpha", "beta", "gamma")


class Node:
    def __init__(self, name: str, process: DaemonProcess, url: str) -> None:
        self.name, self.process, self.url = name, process, url

    async def cluster(self, session: aiohttp.ClientSession,
                      fresh: bool = True) -> dict[str, Any] | None:
        """``/api/health``'s cluster object and status, collected afresh unless ``fresh`` is
        False (a snapshot may be up to ``interval_s`` old); None when the daemon does not
        answer."""
        try:
            async with session.get(f"{self.url}/api/health" + ("?refresh=true" if fresh else ""),
                                   timeout=aiohttp.ClientTimeout(total=2)) as r:
                body = await r.json()
        except (aiohttp.ClientError, TimeoutError):
            return None
        return {**body["cluster"], "system_status": body["system_status"]}


def cluster_config(name: str, nats_url: str, ttl: float = TTL) -> str:
    return (WITHOUT_AGENTS + "[actors.health]\ninterval_s = 0.2\n"
            f'[cluster]\nnats_url = "{nats_url}"\nnode_name = "{name}"\n'
            f"lease_ttl_s = {ttl}\nconnect_timeout_s = {ttl / 2}\n")


async def start_node(name: str, nats_url: str, folder: Path, ttl: float = TTL) -> Node:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "hive.toml"
    config.write_text(cluster_config(name, nats_url, ttl))
    process = DaemonProcess(spawn("--config", str(config), cwd=folder))
    ready = await asyncio.to_thread(process.wait_event, "daemon.ready", 180)
    return Node(name, process, f"http://127.0.0.1:{ready['port']}")


@pytest.fixture
async def cluster(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[list[Node]]:
    nodes = list(await asyncio.gather(
        *(start_node(name, nats_server.url, tmp_path / name) for name in NAMES)))
    try:
        yield nodes
    finally:
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.process.pid, signal.SIGCONT)
        await asyncio.gather(*(asyncio.to_thread(node.process.stop) for node in nodes))


async def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {value!r})")
        await asyncio.sleep(0.05)


async def settled(session: aiohttp.ClientSession, nodes: list[Node],
                  peers: tuple[str, ...]) -> dict[str, dict[str, Any]] | None:
    """Every node's cluster object once they agree: one leader, one epoch, these peers."""
    views = {node.name: await node.cluster(session) for node in nodes}
    if any(v is None for v in views.values()):
        return None
    leaders = {v["leader"] for v in views.values()}
    epochs = {v["epoch"] for v in views.values()}
    roles = sorted(v["role"] for v in views.values())
    if (len(leaders) == 1 and None not in leaders and len(epochs) == 1
            and roles.count("leader") == 1 and roles.count("follower") == len(nodes) - 1
            and all(tuple(v["peers"]) == peers for v in views.values())
            and all(v["fault"] is None for v in views.values())):
        return views  # type: ignore[return-value]
    return None


def leader_of(views: dict[str, dict[str, Any]]) -> str:
    return next(name for name, v in views.items() if v["role"] == "leader")


async def test_one_leader_and_a_follower_takes_over_within_the_ttl_when_it_is_killed(
        cluster: list[Node]) -> None:
    async with aiohttp.ClientSession() as session:
        views = await until(lambda: settled(session, cluster, NAMES), 30, "one leader")
        assert all(v["system_status"] == "healthy" for v in views.values()), views
        old = leader_of(views)
        epoch = views[old]["epoch"]
        async with session.get(f"{cluster[0].url}/metrics") as r:
            text = await r.text()
        assert f"hive_cluster_epoch {float(epoch)}" in text and "hive_cluster_peers 3.0" in text

        victim = next(n for n in cluster if n.name == old)
        survivors = [n for n in cluster if n.name != old]
        os.kill(victim.process.pid, signal.SIGKILL)
        killed = time.monotonic()

        async def new_leader() -> str | None:
            views = await asyncio.gather(*(node.cluster(session) for node in survivors))
            for node, v in zip(survivors, views, strict=True):
                if v and v["role"] == "leader" and v["epoch"] > epoch:
                    return node.name
            return None

        winner = await until(new_leader, TTL + 5, "a new leader")
        took = time.monotonic() - killed
        assert took <= TTL + 1.0 + 0.5, f"failover took {took:.2f} s"  # 0.5 s: health's refresh
        after = await until(lambda: settled(session, survivors, tuple(
            sorted(n.name for n in survivors))), 2 * TTL + 5, "the survivors agree")
        assert leader_of(after) == winner


async def stopped_layout_moves(session: aiohttp.ClientSession, url: str) -> None:
    """Its layout restarted: it publishes its graph at once (a write from a client would go to
    the leader, and never reach this layout)."""
    async with session.post(f"{url}/admin/actors/root/gpu_layout/restart",
                            headers={"Authorization": f"Bearer {PROCESS_TOKEN}"}) as r:
        assert r.status == 200, await r.text()


async def test_a_stopped_leader_steps_down_and_writes_nothing_after_the_takeover(
        cluster: list[Node], nats_server: NatsServer) -> None:
    writes: list[tuple[float, dict[str, Any]]] = []
    watcher = await nats.connect(nats_server.url)

    async def record(msg: Any) -> None:
        with contextlib.suppress(ValueError):
            writes.append((time.monotonic(), json.loads(msg.data)))

    frames: list[tuple[float, int, int]] = []  # (when, epoch, sender) of every frame part
    states: list[tuple[float, int]] = []  # (when, epoch) of every shared-state manifest

    async def frame_part(msg: Any) -> None:
        part = read_part(msg.data)
        frames.append((time.monotonic(), part.epoch, part.sender))

    async def state_write(msg: Any) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            states.append((time.monotonic(), int(json.loads(msg.data)["epoch"])))

    await watcher.subscribe("$KV.hive_cluster.leader", cb=record)
    await watcher.subscribe("hive.hive_cluster.frames", cb=frame_part)
    await watcher.subscribe("$KV.hive_cluster_state.>", cb=state_write)
    try:
        async with aiohttp.ClientSession() as session:
            views = await until(lambda: settled(session, cluster, NAMES), 30, "one leader")
            old = leader_of(views)
            epoch = views[old]["epoch"]
            stopped = next(n for n in cluster if n.name == old)
            others = [n for n in cluster if n.name != old]
            # a layout in motion when it stops: it has frames and files to send when resumed
            body = {"nodes": [{"id": i} for i in range(3000)],
                    "edges": [{"source": i, "target": (i * 13 + 5) % 3000} for i in range(3000)]}
            async with session.put(f"{stopped.url}/api/graph", json=body) as r:
                assert r.status == 200
            await until(lambda: any(e == epoch for _, e, _s in frames), 10, "frames from the leader")
            await until(lambda: any(e == epoch for _, e in states), 10, "the graph kept in NATS")
            os.kill(stopped.process.pid, signal.SIGSTOP)

            async def taken() -> dict[str, Any] | None:
                for node in others:
                    v = await node.cluster(session)
                    if v and v["role"] == "leader" and v["epoch"] > epoch:
                        return v
                return None

            new = await until(taken, TTL + 5, "a takeover")
            await asyncio.sleep(TTL)  # stopped longer than its lease, and then some
            resumed = time.monotonic()
            os.kill(stopped.process.pid, signal.SIGCONT)
            # its first answer, even from the snapshot taken before the stop, is no leader's
            back = await until(lambda: stopped.cluster(session, fresh=False), 10,
                               "the resumed daemon answers")
            assert back["role"] == "follower", back
            # its own layout moves again (a graph loaded into it): none of it may go out
            await stopped_layout_moves(session, stopped.url)
            view = await until(lambda: settled(session, cluster, NAMES), 10, "all agree again")
            assert leader_of(view) == new["leader"] and view[old]["epoch"] == new["epoch"]
            await asyncio.sleep(TTL)  # time for any late write to arrive
    finally:
        await watcher.close()
    late = [w for at, w in writes if at >= resumed and w.get("name") == old]
    assert late == [], f"the stopped leader wrote after it resumed: {late}"
    assert not [e for at, e, _s in frames if at >= resumed and e <= epoch], "an old-epoch frame"
    assert not [at for at, _e, s in frames if at >= resumed and s == sender_id(old)], \
        "the stopped leader sent frames after it resumed"
    assert not [e for at, e in states if at >= resumed and e <= epoch], "an old-epoch state write"
    assert any(e == new["epoch"] for _, e, _s in frames), "the new leader sent frames"
    assert any(w.get("name") == new["leader"] for at, w in writes if at >= resumed)


async def test_nats_down_degrades_every_daemon_and_they_recover_when_it_is_back(
        cluster: list[Node], nats_server: NatsServer) -> None:
    async with aiohttp.ClientSession() as session:
        await until(lambda: settled(session, cluster, NAMES), 30, "one leader")
        nats_server.kill()

        async def all_degraded() -> bool:
            views = [await node.cluster(session) for node in cluster]
            return all(v is not None and v["system_status"] == "degraded" and v["fault"]
                       and "NATS" in v["fault"] and v["role"] == "follower" for v in views)

        await until(all_degraded, 3 * TTL + 10, "every daemon degraded, naming NATS")
        for node in cluster:  # still serving what it has
            async with session.get(f"{node.url}/api/graph") as r:
                assert r.status == 200
        nats_server.start()
        views = await until(lambda: settled(session, cluster, NAMES), 30, "one leader again")
        assert all(v["system_status"] == "healthy" for v in views.values()), views


async def test_a_daemon_started_before_nats_waits_for_it_degraded_and_stops_at_once(
        tmp_path: Path) -> None:
    """No server yet: the daemon serves, says degraded and names the server; it leads once
    the server comes; and a SIGTERM meanwhile is not held up by the connection attempts."""
    server = NatsServer(tmp_path / "nats")
    node = await start_node("early", server.url, tmp_path / "early")
    try:
        async with aiohttp.ClientSession() as session:
            async def waiting() -> dict[str, Any] | None:
                v = await node.cluster(session)
                ok = (v and v["system_status"] == "degraded" and v["role"] == "follower"
                      and f"NATS at {server.url} unreachable" in (v["fault"] or ""))
                return v if ok else None

            await until(waiting, 20, "degraded, naming the server")
            server.start()

            async def leading() -> dict[str, Any] | None:
                v = await node.cluster(session)
                return v if v and v["role"] == "leader" and v["system_status"] == "healthy" else None

            await until(leading, 20, "leading once the server is up")
            server.kill()
            await until(waiting, 20, "degraded again")
        stopping = time.monotonic()
        assert await asyncio.to_thread(node.process.stop) == 0
        assert time.monotonic() - stopping < 8.0  # the link's stop fits the shutdown timeout
        assert not node.process.events("child.kill"), "an actor had to be killed at shutdown"
    finally:
        await asyncio.to_thread(node.process.stop)
        server.stop()


async def test_a_bucket_made_for_another_ttl_is_refused_with_the_reason(
        nats_server: NatsServer, tmp_path: Path) -> None:
    """The server expires the lease by the bucket's age, not by this daemon's setting: a
    daemon whose lease_ttl_s differs must not lead on it."""
    nc = await nats.connect(nats_server.url)
    await nc.jetstream().create_key_value(bucket="hive_cluster", history=1, ttl=30.0)
    await nc.close()
    node = await start_node("odd", nats_server.url, tmp_path / "odd")
    try:
        async with aiohttp.ClientSession() as session:
            async def refused() -> dict[str, Any] | None:
                v = await node.cluster(session)
                ok = v and v["role"] == "follower" and "keeps entries 30 s" in (v["fault"] or "")
                return v if ok else None

            view = await until(refused, 20, "the bucket refused")
            assert view["system_status"] == "degraded" and view["leader"] is None
    finally:
        await asyncio.to_thread(node.process.stop)


async def v3_viewer(session: aiohttp.ClientSession, url: str) -> tuple[Any, Any]:
    from tests.conftest import receive_json

    ws = await session.ws_connect(url.replace("http", "ws") + "/wss")
    await receive_json(ws, "connection_established")
    await ws.send_json({"type": "subscribe_position_updates",
                        "data": {"interval": 30, "protocol": 3}})
    await receive_json(ws, "subscription_confirmed")
    return ws, V3BySpec()


async def drain(ws: Any, client: Any, quiet_s: float) -> int:
    """Apply frames until none comes for ``quiet_s``; how many came."""
    count = 0
    with contextlib.suppress(TimeoutError):
        while True:
            client.apply(await receive_binary(ws, quiet_s))
            count += 1
    return count


async def knowledge_positions(session: aiohttp.ClientSession, url: str) -> dict[int, tuple[float, ...]]:
    async with session.get(f"{url}/api/graph?kind=knowledge") as r:
        body = await r.json()
    nodes = body.get("knowledge", {}).get("nodes", [])
    return {KNOWLEDGE_FLAG | n["id"]: tuple(n["position"]) for n in nodes}


QUANTUM = 5000.0 / 65535 + 5000.0 * 2**-23  # v3's stated error (docs/protocol.md)


async def test_viewers_on_a_follower_see_the_leaders_layout(cluster: list[Node]) -> None:
    async with aiohttp.ClientSession() as session:
        views = await until(lambda: settled(session, cluster, NAMES), 30, "one leader")
        leader = next(n for n in cluster if n.name == leader_of(views))
        follower = next(n for n in cluster if n.name != leader.name)
        ws, client = await v3_viewer(session, follower.url)
        try:
            body = {"nodes": [{"id": i} for i in range(300)],
                    "edges": [{"source": i, "target": (i * 7 + 1) % 300} for i in range(300)]}
            async with session.put(f"{leader.url}/api/graph", json=body) as r:
                assert r.status == 200, await r.text()
            client.apply(await receive_binary(ws, 10))  # the leader's layout, on the follower
            assert len(client.ids) == 300
            await until(lambda: at_rest(session, leader.url), 60, "the leader's layout at rest")
            await drain(ws, client, 1.0)
            truth = await knowledge_positions(session, leader.url)
            got = client.positions()
            assert set(got) == set(truth)
            error = max(abs(a - b) for i in truth for a, b in zip(got[i], truth[i], strict=True))
            assert error <= 2 * QUANTUM, error  # quantized twice: leader -> follower -> viewer
            # the follower's own layout holds none of it: it shows the leader's, and its
            # GET /api/graph is the leader's answer
            async with session.get(f"{follower.url}/api/health?refresh=true") as r:
                components = (await r.json())["components"]
            assert components["gpu_layout"]["detail"]["nodes"] == 0
            assert components["cluster"]["detail"]["frames"]["shown_from_leader"] >= 1
            assert await knowledge_positions(session, follower.url) == truth
            # a drag on the follower's viewer moves the node in the leader's layout, and the
            # follower's viewer sees it
            record = np.zeros(1, RECORD)
            record["id"], record["position"] = KNOWLEDGE_FLAG | 7, (123.0, -45.0, 6.0)
            await ws.send_bytes(record.tobytes())

            async def dragged() -> bool:
                there = (await knowledge_positions(session, leader.url))[KNOWLEDGE_FLAG | 7]
                return max(abs(a - b) for a, b in zip(there, (123.0, -45.0, 6.0), strict=True)) < 1e-3

            await until(dragged, 10, "the drag in the leader's layout")

            async def seen() -> bool:
                with contextlib.suppress(TimeoutError):
                    client.apply(await receive_binary(ws, 0.5))
                p = client.positions()[KNOWLEDGE_FLAG | 7]
                return max(abs(a - b) for a, b in zip(p, (123.0, -45.0, 6.0), strict=True)) <= QUANTUM

            await until(seen, 10, "the drag on the follower's viewer")
        finally:
            await ws.close()


async def at_rest(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(f"{url}/api/health?refresh=true") as r:
        return bool((await r.json())["components"]["gpu_layout"]["detail"]["at_rest"])


async def test_after_the_leader_is_killed_the_new_leader_resumes_its_layout_and_viewers_stay(
        cluster: list[Node]) -> None:
    """Viewers on the survivors keep their sockets; the new leader's layout holds the old
    one's knowledge graph near where it was (its files from the shared state, positions from
    the last frame it got); a change on the new leader reaches every survivor's viewer."""
    async with aiohttp.ClientSession() as session:
        views = await until(lambda: settled(session, cluster, NAMES), 30, "one leader")
        old = next(n for n in cluster if n.name == leader_of(views))
        survivors = [n for n in cluster if n is not old]
        body = {"nodes": [{"id": i} for i in range(200)],
                "edges": [{"source": i, "target": (i + 1) % 200} for i in range(200)]}
        async with session.put(f"{old.url}/api/graph", json=body) as r:
            assert r.status == 200
        viewers = [await v3_viewer(session, n.url) for n in survivors]
        try:
            await until(lambda: at_rest(session, old.url), 60, "the layout at rest")
            # the resting layout's files reach the shared state within a round or two
            await asyncio.sleep(2.5)
            for ws, client in viewers:
                await drain(ws, client, 1.0)
            before = await knowledge_positions(session, old.url)
            assert viewers[0][1].positions().keys() == before.keys()
            os.kill(old.process.pid, signal.SIGKILL)

            async def new_leader() -> Node | None:
                for node in survivors:
                    v = await node.cluster(session)
                    if v and v["role"] == "leader":
                        return node
                return None

            leader = await until(new_leader, TTL + 5, "a new leader")
            resumed = await until(lambda: knowledge_positions(session, leader.url), 10,
                                  "the new leader's layout holds the graph")
            assert resumed.keys() == before.keys()
            [event] = leader.process.events("cluster.resumed")
            assert event["nodes"] == 200 and event["from_picture"], event
            extent = max(max(abs(c) for c in p) for p in before.values())
            moved = max(max(abs(a - b) for a, b in zip(resumed[i], before[i], strict=True))
                        for i in before)
            print(f"resumed: the largest move {moved:.3f}, extent {extent:.1f}")
            assert moved < 0.05 * extent, (moved, extent)  # taken up where it was, not re-laid
            # a change on the new leader: every survivor's viewer, on the same socket, sees it
            body["nodes"].append({"id": 999})
            body["edges"].append({"source": 999, "target": 0})
            async with session.put(f"{leader.url}/api/graph", json=body) as r:
                assert r.status == 200, await r.text()

            async def sees_new_node(viewer: tuple[Any, Any]) -> bool:
                ws, client = viewer
                with contextlib.suppress(TimeoutError):
                    client.apply(await receive_binary(ws, 0.5))
                return (KNOWLEDGE_FLAG | 999) in client.ids

            for viewer in viewers:
                await until(lambda v=viewer: sees_new_node(v), 15, "the new node on a viewer")
        finally:
            for ws, _ in viewers:
                await ws.close()
