"""``/livez`` and ``/readyz`` on a real server: what each says, and when it says no."""

from __future__ import annotations

import asyncio

from tests.conftest import WITHOUT_AGENTS, Daemon, get_json, start_daemon, wait_for


async def test_live_and_ready(daemon: Daemon) -> None:
    assert await get_json(daemon, "/livez") == (200, {"status": "ok"})
    assert await get_json(daemon, "/readyz") == (200, {"status": "ready"})


async def test_not_ready_while_the_layout_is_down_or_the_daemon_stops(daemon: Daemon) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, daemon.tree.stop_child, "root/gpu_layout")
    status, body = await get_json(daemon, "/readyz")
    assert status == 503 and body["reasons"] == ["the layout is stopped"]
    assert (await get_json(daemon, "/livez"))[0] == 200  # a restart of the process fixes nothing
    await loop.run_in_executor(None, daemon.tree.start_child, "root/gpu_layout")
    assert (await get_json(daemon, "/readyz"))[0] == 200
    daemon.services.stopping = True
    status, body = await get_json(daemon, "/readyz")
    assert status == 503 and body["reasons"] == ["shutting down"]


async def test_not_live_once_the_root_gave_up() -> None:
    d = await start_daemon(WITHOUT_AGENTS + "[supervisor]\nmax_restarts = 1\nwithin_seconds = 60\n")
    try:
        loop = asyncio.get_running_loop()
        for _ in range(2):
            await loop.run_in_executor(None, d.tree.kill, "root/health")
        await loop.run_in_executor(None, wait_for, lambda: d.tree.failure is not None)
        status, body = await get_json(d, "/livez")
        assert status == 503 and body["status"] == "failed" and "restarts" in body["reason"]
        assert (await get_json(d, "/readyz"))[0] == 503
    finally:
        await d.stop()
