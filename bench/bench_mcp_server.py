"""The daemon as an MCP server, against the official ``mcp`` SDK's own client, in one run.

The same SDK ``ClientSession`` calls, one at a time:

* ours: ``list_swarms`` on ``/mcp`` (Streamable HTTP) of a real daemon subprocess keeping 10
  swarms (copies of one real session folder);
* the baseline: ``swarm_status`` on claude-flow's own MCP server over stdio (what a client of
  the original system asked for the same picture).

Printed: calls/s and the client's CPU per call, best of interleaved rounds. Target: at least
2x the baseline's calls/s.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.bench_mcp import _cpu  # this process's CPU seconds, as the pool bench measures it

ROOT = Path(__file__).resolve().parents[1]
CALLS = 300
ROUNDS = 3
SWARMS = 10


async def _ours(url: str, calls: int) -> tuple[float, float]:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (httpx2.AsyncClient(timeout=60) as http,
                streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
                ClientSession(read, write) as session):
        await session.initialize()
        result = await session.call_tool("list_swarms", {})
        assert not result.is_error and result.structured_content["total"] == SWARMS, result
        started, cpu0 = time.perf_counter(), _cpu()
        for _ in range(calls):
            await session.call_tool("list_swarms", {})
        elapsed = time.perf_counter() - started
    return calls / elapsed, (_cpu() - cpu0) * 1e3 / calls


async def _baseline(folder: str, calls: int) -> tuple[float, float]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from actors.claude_flow import default_claude_flow

    cli = default_claude_flow()
    if cli is None:
        raise SystemExit("claude-flow is not installed: run `make agents` first")
    params = StdioServerParameters(command=cli[0], args=[*cli[1:], "mcp", "start"], cwd=folder)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.call_tool("swarm_status", {})
        started, cpu0 = time.perf_counter(), _cpu()
        for _ in range(calls):
            await session.call_tool("swarm_status", {})
        elapsed = time.perf_counter() - started
    return calls / elapsed, (_cpu() - cpu0) * 1e3 / calls


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from actors.hive_mind.backend import LocalRunner, SessionManager
    from actors.hive_mind.messages import SpawnRequest
    from bench.bench_swarms import Daemon, _cli

    ours, baseline = [], []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        manager = SessionManager(LocalRunner(), _cli(), str(base / "original"))
        made = manager.create(str(uuid.uuid4()), SpawnRequest("the original session"))
        state = base / "state"
        (state / "sessions").mkdir(parents=True)
        for _ in range(SWARMS):  # real session folders: the daemon reads them as it would any
            shutil.copytree(base / "original" / made.id, state / "sessions" / str(uuid.uuid4()))
        daemon = Daemon(state)
        try:
            for r in range(ROUNDS):
                ours.append(asyncio.run(_ours(daemon.url, CALLS)))
                folder = base / f"baseline-{r}"
                folder.mkdir()
                baseline.append(asyncio.run(_baseline(str(folder), CALLS)))
        finally:
            daemon.stop()
    (our_rate, _), (base_rate, _) = max(ours), max(baseline)
    our_cpu, base_cpu = min(c for _, c in ours), min(c for _, c in baseline)
    print(f"\n{CALLS} calls per client and round, one at a time, best of {ROUNDS} interleaved rounds "
          f"(the mcp SDK's ClientSession on both)")
    print(f"{'server':58} {'calls/s':>9} {'client CPU ms/call':>19}")
    print(f"{'hive-supervisor /mcp, list_swarms (Streamable HTTP)':58} {our_rate:9.1f} {our_cpu:19.3f}")
    print(f"{'claude-flow mcp start, swarm_status (stdio; the baseline)':58} {base_rate:9.1f} "
          f"{base_cpu:19.3f}")
    ratio = our_rate / base_rate
    print(f"[{'PASS' if ratio >= 2 else 'FAIL'}] /mcp list_swarms vs claude-flow stdio: {ratio:.2f}x "
          f"calls/s (target >= 2x); client CPU per call {our_cpu:.3f} vs {base_cpu:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
