"""The telemetry path against real claude-flow servers, all figures from one run.

1. Throughput of ``agent_list`` calls: our pool of 4 servers vs one connection vs the official
   ``mcp`` SDK's ``ClientSession`` (targets: pool >= 1.8x one connection; one connection no
   slower than the SDK, with less client CPU per call).
2. Per-call latency over 10,000 calls through the pool with its maintenance (target: the
   median of the last hundred within 1.5x of the first hundred), next to one server that is
   never maintained (the slowdown the maintenance avoids).
3. The time from ``agent_spawn`` to the agent's node in a ``/wss`` frame (median, p99).
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CALLS = 200
ROUNDS = 3
LONG_CALLS = 10_000
NO_RECYCLE_CALLS = 2_000
SPAWN_SAMPLES = 15


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _command() -> list[str]:
    from actors.claude_flow import default_claude_flow

    base = default_claude_flow()
    if base is None:
        raise SystemExit("claude-flow is not installed: run `make agents` first")
    return [*base, "mcp", "start"]


def _pool(size: int, state: Path, maintain_every: int | None) -> Any:
    from actors.circuit_breaker import MCP_BREAKER, CircuitBreaker
    from actors.mcp.pool import McpPool
    from actors.mcp.servers import StdioConnector
    from supervisor import Backoff

    pool = McpPool(StdioConnector(_command(), state), size, CircuitBreaker("bench", MCP_BREAKER),
                   Backoff(0.5, 30, 1.5), maintain_every=maintain_every)
    assert pool.ensure() == size
    return pool


def _drive(pool: Any, calls: int, in_flight: int) -> tuple[float, float, list[float]]:
    """``calls`` agent_list calls keeping ``in_flight`` outstanding; (calls/s, CPU ms/call,
    per-call latencies in ms)."""
    latencies: list[float] = []
    started, cpu0 = time.perf_counter(), _cpu()
    outstanding: list[tuple[float, Future[Any]]] = []
    issued = 0
    while issued < calls or outstanding:
        while issued < calls and len(outstanding) < in_flight:
            pool.maintain_due()
            outstanding.append((time.perf_counter(), pool.call_tool("agent_list", {})))
            issued += 1
        done, _ = wait([f for _, f in outstanding], return_when="FIRST_COMPLETED")
        now = time.perf_counter()
        keep = []
        for t0, future in outstanding:
            if future in done:
                future.result()
                latencies.append((now - t0) * 1e3)
            else:
                keep.append((t0, future))
        outstanding = keep
    elapsed = time.perf_counter() - started
    return calls / elapsed, (_cpu() - cpu0) * 1e3 / calls, latencies


async def _sdk(calls: int, folder: str) -> tuple[float, float]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    command = _command()
    params = StdioServerParameters(command=command[0], args=command[1:], cwd=folder)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        started, cpu0 = time.perf_counter(), _cpu()
        for _ in range(calls):
            await session.call_tool("agent_list", {})
        elapsed = time.perf_counter() - started
    return calls / elapsed, (_cpu() - cpu0) * 1e3 / calls


def throughput() -> None:
    """Rounds of CALLS calls, interleaved, each client on fresh server folders (so the server's
    own slowdown is the same for all); best round of each."""
    one, four, sdk = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for r in range(ROUNDS):
            single = _pool(1, base / f"one-{r}", None)
            one.append(_drive(single, CALLS, 1)[:2])
            single.close()
            pool = _pool(4, base / f"four-{r}", None)
            four.append(_drive(pool, CALLS, 8)[:2])
            pool.close()
            (base / f"sdk-{r}").mkdir()
            sdk.append(asyncio.run(_sdk(CALLS, str(base / f"sdk-{r}"))))
    (one_rate, one_cpu), (pool_rate, pool_cpu), (sdk_rate, sdk_cpu) = (
        max(x, key=lambda v: v[0]) for x in (one, four, sdk))
    one_cpu, sdk_cpu = min(c for _, c in one), min(c for _, c in sdk)
    print(f"\n{CALLS} agent_list calls per client and round, best of {ROUNDS} interleaved rounds")
    print(f"{'client':40} {'calls/s':>9} {'client CPU ms/call':>19}")
    print(f"{'ours, pool of 4 (8 in flight)':40} {pool_rate:9.1f} {pool_cpu:19.3f}")
    print(f"{'ours, one connection (1 in flight)':40} {one_rate:9.1f} {one_cpu:19.3f}")
    print(f"{'mcp SDK ClientSession (1 in flight)':40} {sdk_rate:9.1f} {sdk_cpu:19.3f}")
    r1 = pool_rate / one_rate
    r2 = one_rate / sdk_rate
    print(f"[{'PASS' if r1 >= 1.8 else 'MISS'}] pool of 4 vs one connection: {r1:.2f}x (target >= 1.8)")
    print(f"[{'PASS' if r2 >= 1.0 else 'MISS'}] one connection vs SDK: {r2:.2f}x calls/s (target >= 1.0)")
    print(f"[{'PASS' if one_cpu <= sdk_cpu else 'MISS'}] client CPU per call: ours {one_cpu:.3f} ms "
          f"vs SDK {sdk_cpu:.3f} ms")


def flatness() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        plain = _pool(1, base / "plain", None)
        _, _, plain_lat = _drive(plain, NO_RECYCLE_CALLS, 1)
        plain.close()
        pool = _pool(4, base / "maintained", 50)
        rate, _, lat = _drive(pool, LONG_CALLS, 4)
        maintenances = sum(m.maintenances for m in pool.members)
        pool.close()
    first, last = statistics.median(lat[:100]), statistics.median(lat[-100:])
    p_first, p_last = statistics.median(plain_lat[:100]), statistics.median(plain_lat[-100:])
    print("\nper-call latency, median of 100 calls (ms)")
    print(f"{'':44} {'first 100':>10} {'last 100':>10} {'ratio':>7}")
    print(f"{f'one server, never maintained, {NO_RECYCLE_CALLS:,} calls':44} {p_first:10.2f} "
          f"{p_last:10.2f} {p_last / p_first:7.2f}")
    print(f"{f'pool of 4, maintained every 50, {LONG_CALLS:,} calls':44} {first:10.2f} "
          f"{last:10.2f} {last / first:7.2f}   ({maintenances} maintenances, {rate:.0f} calls/s)")
    ratio = last / first
    print(f"[{'PASS' if ratio <= 1.5 else 'MISS'}] latency after {LONG_CALLS:,} calls: {ratio:.2f}x the "
          f"first hundred (target <= 1.5)")


async def _spawn_to_frame() -> list[float]:
    import aiohttp

    from actors.graph import AGENT_FLAG
    from tests.conftest import start_daemon

    with tempfile.TemporaryDirectory() as tmp:
        config = f'[actors.mcp]\nstate_dir = "{tmp}/mcp"\n[actors.hive_mind]\nenabled = false\n'
        d = await start_daemon(config)
        samples = []
        try:
            async with d.session.ws_connect(f"{d.ws_url}/ws/mcp-relay") as relay, \
                    d.session.ws_connect(f"{d.ws_url}/wss") as wss:
                await wss.receive()
                await wss.send_json({"type": "subscribe_position_updates", "data": {"interval": 0}})
                seen: set[int] = set()
                for i in range(SPAWN_SAMPLES):
                    t0 = time.perf_counter()
                    await relay.send_json({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                           "params": {"name": "agent_spawn",
                                                      "arguments": {"agentType": "coder"}}})
                    while True:
                        msg = await wss.receive(timeout=30)
                        if msg.type != aiohttp.WSMsgType.BINARY:
                            continue
                        data = msg.data
                        ids = {int.from_bytes(data[1 + 36 * k:5 + 36 * k], "little")
                               for k in range((len(data) - 1) // 36)}
                        agents = {x for x in ids if x & AGENT_FLAG}
                        if agents - seen:
                            seen |= agents
                            samples.append(time.perf_counter() - t0)
                            break
                    await relay.receive(timeout=10)
        finally:
            await d.stop()
    return samples


def spawn_latency() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    samples = sorted(asyncio.run(_spawn_to_frame()))
    median = samples[len(samples) // 2] * 1e3
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))] * 1e3
    print(f"\nagent_spawn -> node in a /wss frame ({len(samples)} agents, poll interval 1 s): "
          f"median {median:.0f} ms, p99 {p99:.0f} ms")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    throughput()
    flatness()
    spawn_latency()
    return 0
