"""A killed incarnation lets go of everything it held before the next one starts.

Found by an outside probe: four kills of ``mcp`` through the admin route left 16 stray
``claude-flow mcp start`` processes (+48 fds, +14 threads), and each ``hive_mind`` kill leaked a
thread. A kill runs neither ``on_stop`` nor ``on_failure``; what an incarnation owns is released
by the closers it registered (``ChildContext.on_exit``). The daemon runs as a real subprocess on
its embedded defaults, with real claude-flow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.chaos.conftest import ADMIN, Holdings, holdings
from tests.conftest import DaemonProcess


async def node(session: aiohttp.ClientSession, url: str, name: str) -> dict[str, Any]:
    async with session.get(f"{url}/admin/actors/root/{name}", headers=ADMIN) as r:
        assert r.status == 200
        return await r.json()


async def settled(pid: int, ready: Callable[[], Any], seconds: float = 60) -> Holdings:
    """Holdings once ``ready()`` holds and two reads a second apart agree."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        if await ready():
            now = holdings(pid)
            if last is not None and (now.threads, now.fds, now.children) == (
                    last.threads, last.fds, last.children):
                return now
            last = now
        await asyncio.sleep(1.0)
    raise AssertionError(f"never settled; last: {last}")


async def kill(session: aiohttp.ClientSession, url: str, name: str) -> int:
    async with session.post(f"{url}/admin/actors/root/{name}/kill", headers=ADMIN) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["node"]["incarnation"]


async def test_killing_mcp_and_hive_mind_leaks_no_process_thread_or_file(
        process_daemon: tuple[DaemonProcess, str]) -> None:
    daemon, url = process_daemon
    async with aiohttp.ClientSession() as session:
        async def mcp_connected() -> bool:
            status = await node(session, url, "mcp")
            async with session.get(f"{url}/api/health?refresh=true") as r:
                health = await r.json()
            return status["state"] == "running" and health["mcp_health"] == "connected"

        last_kill = 0.0

        async def paced_kill() -> None:
            """Kills at least 2 s apart: within the root's intensity (3 restarts in 5 s).
            A pool that reconnects in about a second let four kills land inside 5 s, and the
            root gave up (the daemon exited: seen in 2 of 3 full runs)."""
            nonlocal last_kill
            await asyncio.sleep(max(0.0, last_kill + 2.0 - time.monotonic()))
            await kill(session, url, "mcp")
            last_kill = time.monotonic()

        await settled(daemon.pid, mcp_connected)
        await paced_kill()  # once first: lazily made pools (the loop's executor) grow now
        before = await settled(daemon.pid, mcp_connected)
        servers = len(before.children)
        assert servers >= 4, before  # the pool's claude-flow servers
        for _ in range(4):
            await paced_kill()
            after = await settled(daemon.pid, mcp_connected)
        print(f"mcp: before {before}; after four kills {after}")
        assert after.children.isdisjoint(before.children), "the old servers are gone"
        assert len(after.children) == servers, f"before: {before}; after four kills: {after}"
        assert after.fds <= before.fds + 2, f"before: {before}; after: {after}"
        assert after.threads <= before.threads + 1, f"before: {before}; after: {after}"

        async def hive_mind_running() -> bool:
            return (await node(session, url, "hive_mind"))["state"] == "running"

        before = await settled(daemon.pid, hive_mind_running)
        for _ in range(4):  # within the root's intensity (3 restarts in 5 s)
            await kill(session, url, "hive_mind")
            await asyncio.sleep(2.0)
        after = await settled(daemon.pid, hive_mind_running)
        print(f"hive_mind: before {before}; after four kills {after}")
        assert after.threads <= before.threads, f"before: {before}; after four kills: {after}"
        assert after.fds <= before.fds + 2 and after.children == before.children, after
    assert daemon.events("child.stuck") == []


async def test_restarting_speech_does_not_grow_memory(process_daemon: tuple[DaemonProcess, str]) -> None:
    """Found by the probe: eight kills of ``speech`` took the daemon from 276 to 347 MB RSS
    (each incarnation's decoders and thread pools stayed behind)."""
    daemon, url = process_daemon
    async with aiohttp.ClientSession() as session:
        async def speech_running() -> bool:
            return (await node(session, url, "speech"))["state"] == "running"

        await kill(session, url, "speech")  # the first restart may still load shared libraries
        await asyncio.sleep(2.0)
        before = await settled(daemon.pid, speech_running)
        for _ in range(8):  # within the root's intensity (3 restarts in 5 s)
            await kill(session, url, "speech")
            await asyncio.sleep(2.0)
        after = await settled(daemon.pid, speech_running)
    print(f"speech: before {before}; after eight kills {after}")
    assert after.rss_mb <= before.rss_mb + 15, f"before: {before}; after eight kills: {after}"
    assert after.threads <= before.threads and after.fds <= before.fds + 2, after
