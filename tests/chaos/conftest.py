"""What a process holds, read from /proc (no psutil): its threads, open files, resident memory
and every process below it; and the load the chaos and soak runs put on a real daemon (clients
watching frames, drags that keep the layout moving, swarms spawned through the API)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from actors.graph import KNOWLEDGE_FLAG
from tests.conftest import JSON, PROCESS_TOKEN, DaemonProcess, receive, receive_json, spawn

__all__ = ["ADMIN", "NODES", "Holdings", "descendants", "holdings", "keep_moving", "load_graph", "quiet_holdings",
           "spawn_swarms", "swarms_busy", "tree", "watch_frames"]


def descendants(pid: int) -> set[int]:
    """Every live process whose chain of parents reaches ``pid`` (zombies left out)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: the fields start after the last ')'
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


@dataclass(frozen=True)
class Holdings:
    threads: int
    fds: int
    rss_mb: float
    children: frozenset[int]

    def __str__(self) -> str:
        return (f"{self.threads} threads, {self.fds} fds, {self.rss_mb:.0f} MB RSS, "
                f"{len(self.children)} processes below")


def holdings(pid: int) -> Holdings:
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return Holdings(len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd")),
                    rss_kb / 1024, frozenset(descendants(pid)))


# -- the load of the chaos and soak runs ---------------------------------------------------------

ADMIN = {"Authorization": f"Bearer {PROCESS_TOKEN}"}
NODES = 2_000


async def load_graph(session: aiohttp.ClientSession, url: str) -> None:
    body = {"nodes": [{"id": i} for i in range(NODES)],
            "edges": [{"source": i, "target": (i * 17 + 3) % NODES} for i in range(NODES)]}
    async with session.put(f"{url}/api/graph", data=json.dumps(body), headers=JSON) as r:
        assert r.status == 200, await r.text()


async def tree(session: aiohttp.ClientSession, url: str) -> dict[str, dict[str, object]]:
    async with session.get(f"{url}/admin/actors", headers=ADMIN) as r:
        return {c["name"]: c for c in (await r.json())["children"]}


async def swarms_busy(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(f"{url}/api/swarms") as r:
        return any(s["status"] in ("queued", "spawning", "stopping") for s in (await r.json())["swarms"])


async def quiet_holdings(session: aiohttp.ClientSession, url: str, pid: int) -> Holdings:
    """Holdings once every actor runs, no swarm is being made and two reads agree."""
    last = None
    for _ in range(120):
        actors = await tree(session, url)
        if all(a["state"] == "running" for a in actors.values()) and not await swarms_busy(session, url):
            now = holdings(pid)
            if last is not None and (now.threads, now.fds, now.children) == (last.threads, last.fds, last.children):
                return now
            last = now
        await asyncio.sleep(1.0)
    raise AssertionError(f"never quiet; last: {last}")


async def watch_frames(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> float:
    """The longest wait between two frames, in seconds."""
    async with session.ws_connect(url.replace("http", "ws") + "/wss", max_msg_size=0) as ws:
        await receive_json(ws, "connection_established", 30)
        await ws.send_json({"type": "subscribe_position_updates", "data": {"interval": 60, "binary": True}})
        last, worst = None, 0.0
        while not stop.is_set():
            msg = await receive(ws, 10)
            assert msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), msg
            if msg.type is aiohttp.WSMsgType.BINARY:
                now = time.monotonic()
                if last is not None:
                    worst = max(worst, now - last)
                last = now
        return worst


async def keep_moving(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> None:
    rng = random.Random(1)
    async with session.ws_connect(url.replace("http", "ws") + "/wss") as ws:
        await receive_json(ws, "connection_established", 30)
        while not stop.is_set():
            node = KNOWLEDGE_FLAG | rng.randrange(NODES)
            await ws.send_bytes(struct.pack("<I3f3ffi", node, *(rng.uniform(-200, 200) for _ in range(3)),
                                            0, 0, 0, 0, -1))
            await asyncio.sleep(0.25)


async def spawn_swarms(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> Counter[int]:
    answers: Counter[int] = Counter()
    while not stop.is_set():
        async with session.post(f"{url}/api/swarms", data=json.dumps({"task": "chaos"}), headers=JSON) as r:
            answers[r.status] += 1
        await asyncio.sleep(5.0)
    return answers


@pytest.fixture
async def process_daemon(claude_flow: list[str], tmp_path: Path) -> AsyncIterator[tuple[DaemonProcess, str]]:
    process = DaemonProcess(spawn(cwd=tmp_path))
    try:
        ready = await asyncio.to_thread(process.wait_event, "daemon.ready", 180)
        yield process, f"http://127.0.0.1:{ready['port']}"
    finally:
        await asyncio.to_thread(process.stop)
