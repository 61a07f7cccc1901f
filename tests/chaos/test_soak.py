"""The soak: the chaos load (20 ``/wss`` clients, a 2,000-node graph kept moving, telemetry,
swarms spawned through the API, and a kill every 30 s) on a real daemon for ``SOAK_SECONDS``
(``make soak``: 600). RSS, threads and open files at the end are within 5 % of their values after
the first minute, and every sample is printed. Minutes long, so not part of ``make test`` (whose
chaos runs hold the same load for 20 s): it runs when ``SOAK_SECONDS`` is set."""

from __future__ import annotations

import asyncio
import os
import random
import time

import aiohttp
import pytest

from tests.chaos.conftest import (
    ADMIN,
    Holdings,
    holdings,
    keep_moving,
    load_graph,
    quiet_holdings,
    spawn_swarms,
    watch_frames,
)
from tests.conftest import DaemonProcess

SECONDS = float(os.environ.get("SOAK_SECONDS", "0"))
FIRST_MINUTE = min(60.0, SECONDS / 3)
CLIENTS = 20
KILL_EVERY_S = 30.0
SETTLE_S = 20.0  # no kill in the last seconds: the end is sampled with every actor back
KILLABLE = ("gpu_layout", "mcp", "hive_mind", "speech", "health")


@pytest.mark.skipif(SECONDS <= 0, reason="make soak runs it (SOAK_SECONDS=600)")
async def test_soak(process_daemon: tuple[DaemonProcess, str]) -> None:
    process, url = process_daemon
    samples: list[tuple[float, Holdings]] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await load_graph(session, url)
        stop = asyncio.Event()
        watchers = [asyncio.create_task(watch_frames(session, url, stop)) for _ in range(CLIENTS)]
        mover = asyncio.create_task(keep_moving(session, url, stop))
        spawner = asyncio.create_task(spawn_swarms(session, url, stop))
        rng = random.Random(7)
        started = time.monotonic()
        next_kill = started + KILL_EVERY_S
        while (now := time.monotonic()) < started + SECONDS:
            if now >= next_kill and now < started + SECONDS - SETTLE_S:
                next_kill += KILL_EVERY_S
                async with session.post(f"{url}/admin/actors/root/{rng.choice(KILLABLE)}/kill",
                                        headers=ADMIN) as r:
                    assert r.status in (200, 409), await r.text()
            samples.append((now - started, holdings(process.pid)))
            print(f"{now - started:6.0f} s  {samples[-1][1]}", flush=True)
            await asyncio.sleep(10.0)
        end = holdings(process.pid)  # under the same load as the first minute's sample
        stop.set()
        gaps = await asyncio.gather(*watchers)
        await mover
        answers = await spawner
        quiet = await quiet_holdings(session, url, process.pid)
    first = next((h for t, h in samples if t >= FIRST_MINUTE), samples[-1][1])
    print(f"soak {SECONDS:.0f} s: after the first minute {first}; at the end {end}; clients gone "
          f"{quiet}; worst frame gap {max(gaps) * 1e3:.0f} ms; spawns {dict(answers)}")
    assert end.rss_mb <= first.rss_mb * 1.05, (first, end)
    assert end.threads <= first.threads * 1.05 + 1 and end.fds <= first.fds * 1.05 + 1, (first, end)
    assert len(end.children) <= len(first.children), (first, end)
    assert process.proc.poll() is None
