"""A layout that comes to rest, and wakes locally (issue 20), against the daemon as a subprocess.

* time to rest for a 2,000-node graph, seconds (printed);
* ``/wss`` bytes/s per viewer once a 10,000-node graph has settled (target < 1 KB/s), beside the
  same viewer's bytes/s while that graph converged (the baseline: what a still graph cost every
  viewer forever before rest);
* the daemon's CPU at rest, % of one core (target about 0), beside its CPU while converging;
* the mental map: one new node joining a settled 10,000-node graph moves at most 5 % of the
  others by more than 1 % of the layout's extent (measured on the layout actor itself).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.daemon import BenchDaemon, cpu_seconds

VIEW_S = 10.0


def random_edges(n: int, seed: int = 5) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    edges = {(i, int(rng.integers(0, i))) for i in range(1, n)}
    edges |= {(int(a), int(b)) for a, b in rng.integers(0, n, (n, 2)) if a != b}
    return sorted(edges)


class Daemon(BenchDaemon):
    """Without the agents' planes or speech."""

    def __init__(self, state: Path) -> None:
        super().__init__(state, "[actors.mcp]\nenabled = false\n[actors.hive_mind]\nenabled = false\n"
                                "[actors.speech]\nenabled = false\n[actors.health]\ninterval_s = 1.0\n")


async def layout(session: Any, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/api/health?refresh=true") as r:
        detail: dict[str, Any] = (await r.json())["components"]["gpu_layout"]["detail"]
        return detail


async def load(session: Any, url: str, n: int) -> None:
    body = {"nodes": [{"id": i} for i in range(n)],
            "edges": [{"source": a, "target": b} for a, b in random_edges(n)]}
    async with session.put(f"{url}/api/graph", json=body) as r:
        assert r.status == 200, await r.text()


async def viewer_bytes(session: Any, url: str, seconds: float) -> float:
    """Bytes per second one ``/wss`` viewer (33 ms interval) receives, the first full frame
    left out (every viewer pays it once)."""
    total = 0
    async with session.ws_connect(url.replace("http", "ws") + "/wss", max_msg_size=0) as ws:
        await ws.send_json({"type": "subscribe_position_updates", "data": {"interval": 33}})
        first = True
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:  # an outer timeout: receive()'s own restarts at every ping it answers
                msg = await asyncio.wait_for(ws.receive(), left)
            except TimeoutError:
                break
            if msg.type.name == "BINARY":
                if first:
                    first = False
                    continue
                total += len(msg.data)
            elif msg.type.name == "TEXT":
                total += len(msg.data)
            else:
                break
    return total / seconds


async def through_the_daemon(state: Path) -> dict[str, float]:
    import aiohttp

    out: dict[str, float] = {}
    daemon = Daemon(state)
    try:
        async with aiohttp.ClientSession() as session:
            await load(session, daemon.url, 2_000)
            started = time.monotonic()
            while not (await layout(session, daemon.url))["at_rest"]:
                await asyncio.sleep(0.2)
                if time.monotonic() - started > 300:
                    raise SystemExit("the 2,000-node graph did not come to rest in 300 s")
            out["rest_2k_s"] = time.monotonic() - started
            print(f"  2,000 nodes at rest after {out['rest_2k_s']:.1f} s", flush=True)
            await load(session, daemon.url, 10_000)
            cpu0, t0 = cpu_seconds(daemon.proc.pid), time.monotonic()
            out["converging_bps"] = await viewer_bytes(session, daemon.url, VIEW_S)
            out["converging_cpu"] = (cpu_seconds(daemon.proc.pid) - cpu0) / (time.monotonic() - t0)
            started = time.monotonic()
            while not (await layout(session, daemon.url))["at_rest"]:
                await asyncio.sleep(0.5)
                if time.monotonic() - started > 600:
                    raise SystemExit("the 10,000-node graph did not come to rest in 600 s")
            out["rest_10k_s"] = time.monotonic() - started + VIEW_S
            print(f"  10,000 nodes at rest after {out['rest_10k_s']:.1f} s", flush=True)
            await asyncio.sleep(1.0)
            cpu0, t0 = cpu_seconds(daemon.proc.pid), time.monotonic()
            out["rest_bps"] = await viewer_bytes(session, daemon.url, VIEW_S)
            out["rest_cpu"] = (cpu_seconds(daemon.proc.pid) - cpu0) / (time.monotonic() - t0)
    finally:
        daemon.stop()
    return out


def mental_map(n: int = 10_000) -> tuple[float, float]:
    """(fraction of the old nodes moved past 1 % of the extent, seconds to rest again) after
    one new node joins a settled ``n``-node graph, on the layout actor in a tree of its own."""
    from actors.gpu_layout import LayoutActor, LayoutSettings
    from actors.graph import Graph, GraphEdge, GraphNode, NodeKind
    from actors.messages import GetSnapshot, SetGraph, StatusQuery, UpdateGraph
    from supervisor import SupervisionTree, SupervisorSpec, WorkerSpec

    spec = WorkerSpec("layout", LayoutActor, args=(LayoutSettings(backend="cpu"),), start_timeout=300)
    tree = SupervisionTree(SupervisorSpec("root", (spec,)))
    tree.start()
    try:
        actor = tree.address("root/layout")
        graph = Graph.build(NodeKind.KNOWLEDGE, [GraphNode(i, "") for i in range(n)],
                            [GraphEdge(a, b) for a, b in random_edges(n)])
        actor.ask(SetGraph(graph), timeout=60)

        def rest() -> float:
            began = time.monotonic()
            while not actor.ask(StatusQuery()).detail["at_rest"]:
                time.sleep(0.2)
                if time.monotonic() - began > 600:
                    raise SystemExit("no rest in 600 s")
            return time.monotonic() - began

        print(f"  mental map: {n:,} nodes at rest after {rest():.1f} s", flush=True)
        before = actor.ask(GetSnapshot())
        actor.ask(UpdateGraph(NodeKind.KNOWLEDGE, add_nodes=(GraphNode(n + 1, "new"),),
                              add_edges=(GraphEdge(n + 1, 17),)))
        again = rest()
        after = actor.ask(GetSnapshot())
        index = {int(w): i for i, w in enumerate(after.wire_ids.tolist())}
        now = after.positions[[index[int(w)] for w in before.wire_ids.tolist()]]
        extent = float(np.ptp(before.positions, axis=0).max())
        moved = np.linalg.norm(now - before.positions, axis=1) > 0.01 * extent
        return float(moved.mean()), again
    finally:
        tree.stop(10)


def main() -> int:
    failed = 0
    with tempfile.TemporaryDirectory(prefix="bench-rest-") as folder:
        figures = asyncio.run(through_the_daemon(Path(folder)))
    print(f"time to rest, 2,000 nodes: {figures['rest_2k_s']:.1f} s; 10,000 nodes: "
          f"{figures['rest_10k_s']:.1f} s (defaults: rest_drift 0.002 of the extent over 1 s)")
    print(f"/wss per viewer, 10,000 nodes: converging {figures['converging_bps'] / 1e3:,.1f} KB/s "
          f"(the baseline: what a still graph cost before rest), at rest "
          f"{figures['rest_bps']:.0f} B/s")
    print(f"daemon CPU: converging {figures['converging_cpu'] * 100:.0f} % of a core, at rest "
          f"{figures['rest_cpu'] * 100:.1f} %")
    moved, again = mental_map()
    print(f"one new node in a settled 10,000-node graph: {moved * 100:.2f} % of the others moved "
          f"by more than 1 % of the extent; at rest again after {again:.1f} s")
    checks = [
        (figures["rest_bps"] < 1000, f"/wss at rest {figures['rest_bps']:.0f} B/s per viewer, "
         f"{figures['converging_bps'] / max(figures['rest_bps'], 1.0):,.0f}x less than while "
         f"converging (target < 1 KB/s)"),
        (figures["rest_cpu"] < 0.02, f"daemon CPU at rest {figures['rest_cpu'] * 100:.1f} % of a "
         f"core, against {figures['converging_cpu'] * 100:.0f} % converging (target about 0: < 2 %)"),
        (moved <= 0.05, f"mental map: {moved * 100:.2f} % of nodes moved > 1 % of the extent "
         f"after one new node (target <= 5 %)"),
    ]
    for ok, line in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {line}")
        failed += int(not ok)
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
