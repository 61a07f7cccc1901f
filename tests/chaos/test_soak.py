"""The soaks, on a real daemon for ``SOAK_SECONDS`` each (``make soak``: 600), every sample
printed. Minutes long, so not part of ``make test`` (whose chaos runs hold the same load for
20 s): they run when ``SOAK_SECONDS`` is set.

- The chaos load (20 ``/wss`` clients, a 2,000-node graph kept moving, telemetry, swarms
  spawned through the API, and a kill every 30 s): RSS, threads and open files at the end are
  within 5 % of their values after the first minute.
- Churn, as a long-running user makes it (the second probe round): a swarm spawned and the
  oldest stopped every 3 s, finished ones removed past ``keep_finished``: RSS at the end is
  within 2 % of its value at a quarter of the run (minute 5 of a 20-minute run), and the
  swarms listed and the files on disk stay bounded."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from pathlib import Path

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
from tests.conftest import JSON, DaemonProcess, spawn

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


CHURN_EVERY_S = 3.0
KEEP_FINISHED = 100  # reached after about five minutes of churn, so the run's last 3/4 is steady


async def churn(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> Counter[str]:
    """Spawn a swarm and stop the oldest running one every few seconds, as a user does all day."""
    answers: Counter[str] = Counter()
    running: list[str] = []
    while not stop.is_set():
        async with session.post(f"{url}/api/swarms", data=json.dumps({"task": "churn"}),
                                headers=JSON) as r:
            answers[f"spawn {r.status}"] += 1
            if r.status == 202:
                running.append((await r.json())["id"])
        if len(running) > 3:
            async with session.delete(f"{url}/api/swarms/{running.pop(0)}") as r:
                answers[f"stop {r.status}"] += 1
        await asyncio.sleep(CHURN_EVERY_S)
    return answers


def state_size(folder: Path) -> tuple[int, int]:
    """Files and bytes under ``folder``, read while the daemon changes it (a file or a folder
    may go between the listing and the look: it is skipped)."""
    count = size = 0
    for parent, _dirs, names in os.walk(folder):  # os.walk skips folders it cannot list
        for name in names:
            try:
                size += os.stat(os.path.join(parent, name)).st_size
            except OSError:
                continue
            count += 1
    return count, size


@pytest.mark.skipif(SECONDS <= 0, reason="make soak runs it (SOAK_SECONDS=600)")
async def test_soak_with_churn(claude_flow: list[str], tmp_path: Path) -> None:
    config = tmp_path / "hive.toml"
    config.write_text(f"[actors.hive_mind]\nkeep_finished = {KEEP_FINISHED}\n")
    process = DaemonProcess(spawn("--config", str(config), cwd=tmp_path))
    samples: list[tuple[float, Holdings, int, tuple[int, int]]] = []
    try:
        ready = await asyncio.to_thread(process.wait_event, "daemon.ready", 180)
        url = f"http://127.0.0.1:{ready['port']}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            stop = asyncio.Event()
            watchers = [asyncio.create_task(watch_frames(session, url, stop)) for _ in range(5)]
            churner = asyncio.create_task(churn(session, url, stop))
            started = time.monotonic()
            while (now := time.monotonic()) < started + SECONDS:
                async with session.get(f"{url}/api/swarms") as r:
                    listed = len((await r.json())["swarms"])
                disk = state_size(tmp_path / ".hive-state")
                samples.append((now - started, holdings(process.pid), listed, disk))
                print(f"{now - started:6.0f} s  {samples[-1][1]}; {listed} swarms listed; "
                      f"{disk[0]} files, {disk[1] / 1e6:.1f} MB on disk", flush=True)
                await asyncio.sleep(10.0)
            end = holdings(process.pid)
            stop.set()
            await asyncio.gather(*watchers)
            answers = await churner
    finally:
        await asyncio.to_thread(process.stop)
    quarter = next(s for s in samples if s[0] >= SECONDS / 4)
    expired = len(process.events("swarm.expired"))
    print(f"churn soak {SECONDS:.0f} s: at {quarter[0]:.0f} s {quarter[1]}, {quarter[2]} listed, "
          f"{quarter[3][0]} files; at the end {end}, {samples[-1][2]} listed, {samples[-1][3][0]} "
          f"files; {expired} swarms expired; {dict(answers)}")
    assert answers["stop 503"] == 0 and answers["spawn 202"] > SECONDS / CHURN_EVERY_S / 2
    assert max(s[2] for s in samples) <= KEEP_FINISHED + 10  # finished ones kept + running ones
    assert end.rss_mb <= quarter[1].rss_mb * 1.02, (quarter[1], end)
