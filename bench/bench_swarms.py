"""Swarm control at 10, 100 and 1,000 sessions, the daemon as a real subprocess, all in one run.

For each size, the sessions are copies of one real session folder (made by the real claude-flow
CLI); a fresh daemon starts over them and is measured from this process over HTTP:

* start-up: seconds to ``daemon.ready`` (target under 2 s at 1,000 sessions);
* ``GET /api/swarms`` (the whole list), sequential, 3 rounds of 200: the median round's p50
  and p99 (target p99 < 20 ms at every size, and p99 at 1,000 within 1.5x of p99 at 10), and
  the daemon's CPU per request;
* ``POST /api/swarms``, 10 at a time: the time to ``202 Accepted``, p50 and p99 (target
  p99 < 300 ms), while the accepted spawns run on the worker pool;
* at 1,000 sessions, 100 spawns 10 at a time: how many reach ``active`` or fail with a reason
  (target 100 of 100), and how long each took.

The baseline, from the same run: what a read cost before, one ``hive-mind status`` Node.js start
per session, timed here on one session and multiplied by the size (marked ``~``: at 1,000 it
would take a quarter of an hour to run). Then, with the MCP pool on, the time from a swarm's
``session_update: active`` to its workers' nodes in a ``/wss`` frame (target median under
100 ms), next to the telemetry poll's path (``agent_spawn`` through the relay to its node),
which is what showed new agents before.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.daemon import ROOT, BenchDaemon, cpu_seconds

SIZES = tuple(int(n) for n in os.environ.get("BENCH_SWARM_SIZES", "10,100,1000").split(","))
LIST_REQUESTS = 200
ROUNDS = 3
ACCEPT_REQUESTS = 50
SPAWNS = 100
CONCURRENCY = 10
ANNOUNCE_SAMPLES = 10
AGENT_FLAG = 0x80000000


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def _cli() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from actors.claude_flow import default_claude_flow

    cli = default_claude_flow()
    if cli is None:
        raise SystemExit("claude-flow is not installed: run `make agents` first")
    return cli


def _seed(state: Path, original: Path, count: int) -> None:
    sessions = state / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    for _ in range(count):
        shutil.copytree(original, sessions / str(uuid.uuid4()))


class Daemon(BenchDaemon):
    """The daemon with the hive-mind actor on ``state``'s sessions (and the MCP pool, if asked)."""

    def __init__(self, state: Path, mcp: bool = False) -> None:
        super().__init__(state, (
            f"[actors.mcp]\nenabled = {str(mcp).lower()}\npool_size = 1\npoll_interval_s = 1.0\n"
            "[actors.speech]\nenabled = false\n[actors.health]\ninterval_s = 1.0\n"
            f"[actors.hive_mind]\nrefresh_interval_s = 2.0\nsessions_dir = \"{state / 'sessions'}\"\n"))


async def _list_figures(session: Any, daemon: Daemon, expected: int) -> dict[str, float]:
    async with session.get(f"{daemon.url}/api/swarms?refresh=true") as r:
        total = (await r.json())["total"]
    assert total == expected, f"listed {total} of {expected}"
    p50s, p99s = [], []
    cpu0 = cpu_seconds(daemon.proc.pid)
    for _ in range(ROUNDS):  # the median round: one noisy second on two cores is not the figure
        latencies = []
        for _ in range(LIST_REQUESTS):
            started = time.perf_counter()
            async with session.get(f"{daemon.url}/api/swarms") as r:
                await r.read()
            latencies.append((time.perf_counter() - started) * 1000)
        p50s.append(_p(latencies, 0.5))
        p99s.append(_p(latencies, 0.99))
    cpu = (cpu_seconds(daemon.proc.pid) - cpu0) / (LIST_REQUESTS * ROUNDS) * 1000
    return {"p50": statistics.median(p50s), "p99": statistics.median(p99s), "cpu_ms": cpu}


async def _spawn_many(session: Any, daemon: Daemon, count: int,
                      wait: bool) -> dict[str, Any]:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    accepts: list[float] = []
    ids: list[str] = []
    statuses: list[int] = []

    async def one(i: int) -> None:
        async with semaphore:
            started = time.perf_counter()
            async with session.post(f"{daemon.url}/api/swarms", json={"task": f"bench {i}"}) as r:
                body = await r.json()
                statuses.append(r.status)
            accepts.append((time.perf_counter() - started) * 1000)
            if r.status == 202:
                ids.append(body["id"])

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    out: dict[str, Any] = {"p50": _p(accepts, 0.5), "p99": _p(accepts, 0.99),
                           "accepted": statuses.count(202),
                           "refused": sorted(s for s in statuses if s != 202)}
    if not wait:
        return out
    outcome: dict[str, str] = {}
    async with asyncio.timeout(900):
        while len(outcome) < len(ids):
            for sid in ids:
                if sid in outcome:
                    continue
                async with session.get(f"{daemon.url}/api/swarms/{sid}") as r:
                    swarm = await r.json()
                if swarm["status"] == "active" and swarm["agentCount"] > 0:
                    outcome[sid] = "active"
                elif swarm["status"] == "failed":
                    outcome[sid] = "failed: " + (swarm.get("error") or "(no reason!)")
            await asyncio.sleep(0.5)
    out["active"] = sum(1 for o in outcome.values() if o == "active")
    out["failed_with_reason"] = sum(1 for o in outcome.values()
                                    if o.startswith("failed") and "(no reason!)" not in o)
    out["failures"] = sorted({o for o in outcome.values() if o != "active"})
    out["seconds"] = time.perf_counter() - started
    return out


def _agent_nodes(frame: bytes) -> set[int]:
    return {struct.unpack_from("<I", frame, 1 + 36 * i)[0] for i in range((len(frame) - 1) // 36)
            if struct.unpack_from("<I", frame, 1 + 36 * i)[0] & AGENT_FLAG}


async def _announce_latency(session: Any, daemon: Daemon) -> tuple[list[float], list[float]]:
    """(ms from session_update active to the workers' nodes on /wss, ms from an agent_spawn
    answer to its node on /wss through the telemetry poll)."""
    import aiohttp

    ws_url = daemon.url.replace("http", "ws")
    announced: list[float] = []
    polled: list[float] = []
    async with session.ws_connect(f"{ws_url}/ws/hybrid-health") as health, \
            session.ws_connect(f"{ws_url}/wss") as wss, \
            session.ws_connect(f"{ws_url}/ws/mcp-relay") as relay:
        await wss.receive()
        await wss.send_json({"type": "subscribe_position_updates", "data": {"interval": 0}})
        known: set[int] = set()
        frames: asyncio.Queue[tuple[float, set[int]]] = asyncio.Queue()

        async def read_frames() -> None:
            async for msg in wss:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    frames.put_nowait((time.perf_counter(), _agent_nodes(msg.data)))

        reader = asyncio.create_task(read_frames())

        async def new_nodes(count: int, since: float) -> float:
            nonlocal known
            async with asyncio.timeout(30):
                while True:
                    at, nodes = await frames.get()
                    fresh = nodes - known
                    if len(fresh) >= count and at >= since:
                        known |= nodes
                        return (at - since) * 1000
                    known |= nodes if at < since else set()

        for i in range(ANNOUNCE_SAMPLES):
            async with session.post(f"{daemon.url}/api/swarms", json={"task": f"announce {i}"}) as r:
                sid = (await r.json())["id"]
            async with asyncio.timeout(60):
                while True:
                    data = json.loads((await health.receive()).data)
                    if data.get("type") == "session_update" and data["data"]["id"] == sid \
                            and data["data"]["status"] == "active":
                        break
            announced.append(await new_nodes(data["data"]["agentCount"], time.perf_counter()))
        for i in range(ANNOUNCE_SAMPLES):
            await relay.send_json({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                   "params": {"name": "agent_spawn",
                                              "arguments": {"agentType": "coder"}}})
            await relay.receive()
            polled.append(await new_nodes(1, time.perf_counter()))
        reader.cancel()
    return announced, polled


def _cli_read_s(cli: list[str], folder: Path, samples: int = 5) -> float:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.run([*cli, "hive-mind", "status", "--format", "json"], cwd=folder,
                       capture_output=True, check=True, env={**os.environ, "NO_COLOR": "1"})
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def _run() -> int:
    import aiohttp

    sys.path.insert(0, str(ROOT))
    from actors.hive_mind.backend import LocalRunner, SessionManager
    from actors.hive_mind.messages import SpawnRequest

    cli = _cli()
    scratch = Path(tempfile.mkdtemp(prefix="bench-swarms-"))
    try:
        manager = SessionManager(LocalRunner(), cli, str(scratch / "original"))
        made = manager.create(str(uuid.uuid4()), SpawnRequest("the original session"))
        original = scratch / "original" / made.id
        cli_s = _cli_read_s(cli, original)
        rows: dict[int, dict[str, Any]] = {}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            for size in SIZES:
                state = scratch / f"size-{size}"
                _seed(state, original, size)
                daemon = Daemon(state)
                try:
                    row: dict[str, Any] = {"startup_s": daemon.ready["startup_s"]}
                    row["list"] = await _list_figures(session, daemon, size)
                    row["accept"] = await _spawn_many(session, daemon, ACCEPT_REQUESTS, wait=False)
                    if size == SIZES[-1]:
                        daemon.stop()
                        shutil.rmtree(state / ".hive-state", ignore_errors=True)
                        daemon = Daemon(state)
                        row["spawns"] = await _spawn_many(session, daemon, SPAWNS, wait=True)
                    rows[size] = row
                finally:
                    daemon.stop()
                print(f"  size {size:5}: measured", flush=True)
            state = scratch / "announce"
            state.mkdir()
            daemon = Daemon(state, mcp=True)
            try:
                announced, polled = await _announce_latency(session, daemon)
            finally:
                daemon.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _report(rows, cli_s, announced, polled)


def _report(rows: dict[int, dict[str, Any]], cli_s: float, announced: list[float],
            polled: list[float]) -> int:
    print(f"\nbaseline: one `hive-mind status` (a Node.js start) = {cli_s * 1000:.0f} ms per "
          f"session read ('~' = that times the size, not run)")
    print(f"{'sessions':>8} {'start s':>8} {'list p50':>9} {'list p99':>9} {'CPU ms/req':>10} "
          f"{'baseline list':>14} {'ratio':>8} {'accept p50':>11} {'accept p99':>11}")
    for size, row in rows.items():
        base = cli_s * size * 1000
        print(f"{size:8} {row['startup_s']:8.2f} {row['list']['p50']:9.2f} "
              f"{row['list']['p99']:9.2f} {row['list']['cpu_ms']:10.2f} {'~':>2}{base:11.0f} ms "
              f"{base / row['list']['p99']:7.0f}x {row['accept']['p50']:11.1f} "
              f"{row['accept']['p99']:11.1f}")
    small, big = rows[SIZES[0]], rows[SIZES[-1]]
    spawns = big["spawns"]
    verdicts = [
        (all(r["list"]["p99"] < 20 for r in rows.values()),
         "list p99 < 20 ms at every size: " + ", ".join(
             f"{r['list']['p99']:.1f}" for r in rows.values())),
        (big["list"]["p99"] <= 1.5 * small["list"]["p99"],
         f"list p99 at {SIZES[-1]} within 1.5x of {SIZES[0]}: "
         f"{big['list']['p99'] / small['list']['p99']:.2f}x"),
        (all(r["accept"]["p99"] < 300 for r in rows.values()),
         "spawn accepted p99 < 300 ms at every size: " + ", ".join(
             f"{r['accept']['p99']:.0f}" for r in rows.values())),
        (big["accept"]["p99"] <= 1.5 * max(small["accept"]["p99"], 1.0),
         f"accept p99 at {SIZES[-1]} within 1.5x of {SIZES[0]}: "
         f"{big['accept']['p99'] / max(small['accept']['p99'], 1.0):.2f}x"),
        (spawns["active"] + spawns["failed_with_reason"] == SPAWNS,
         f"{SPAWNS} spawns {CONCURRENCY} at a time at {SIZES[-1]} sessions: "
         f"{spawns['active']} active, {spawns['failed_with_reason']} failed with a reason "
         f"({spawns['seconds']:.0f} s){'; not accepted: ' + str(spawns['refused']) if spawns['refused'] else ''}"
         f"{'; ' + '; '.join(spawns['failures']) if spawns['failures'] else ''}"),
        (big["startup_s"] < 2.0, f"start-up with {SIZES[-1]} sessions: {big['startup_s']:.2f} s"),
        (statistics.median(announced) < 100,
         f"announced workers on /wss: median {statistics.median(announced):.1f} ms, max "
         f"{max(announced):.1f} ms (the poll's path: median {statistics.median(polled):.0f} ms, "
         f"{statistics.median(polled) / max(statistics.median(announced), 0.1):.0f}x slower)"),
    ]
    print()
    for ok, text in verdicts:
        print(f"[{'PASS' if ok else 'MISS'}] {text}")
    return 0


def main() -> int:
    return asyncio.run(_run())


if __name__ == "__main__":
    sys.exit(main())
