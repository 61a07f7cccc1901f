"""``/wss`` protocol v3 against v2 (issue 21), bytes per viewer-second through the daemon.

The daemon runs as a subprocess; one v2 and one v3 viewer (33 ms interval) read side by side,
so each ratio compares the same frames:

* converging from a fresh load at 10,000 and 100,000 nodes, the first full frame included
  (target: v3 at least 5x fewer bytes than v2; 10x is the stretch);
* a user dragging one node of the settled 10,000-node graph at 30 Hz (printed);
* the settled graph (target: v3 under 1 KB/s per viewer).

Then, in this process: the server's encode CPU per frame at 100,000 nodes (the v3 chain's
quantize-and-delta against v2's records, the layout's own converging frames), and
permessage-deflate on v2 and v3 frames (size and CPU per viewer: why /wss declines it).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import struct
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_rest import Daemon, layout, random_edges
from transport.codec import encode_records
from transport.codec_v3 import Chain

CONVERGE_S = 15.0
DRAG_S = 5.0
REST_S = 10.0


class Viewer:
    """One ``/wss`` subscription counting every byte it receives (binary and text)."""

    def __init__(self, session: Any, url: str, protocol: int) -> None:
        self.session, self.url, self.protocol = session, url, protocol
        self.bytes = 0
        self.frames = 0
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._read())
        await self._ready.wait()

    def take(self) -> tuple[int, int]:
        """(bytes, frames) since the last take."""
        out = (self.bytes, self.frames)
        self.bytes = self.frames = 0
        return out

    async def _read(self) -> None:
        data: dict[str, Any] = {"interval": 33}
        if self.protocol == 3:
            data["protocol"] = 3
        async with self.session.ws_connect(self.url.replace("http", "ws") + "/wss",
                                           max_msg_size=0) as ws:
            await ws.send_json({"type": "subscribe_position_updates", "data": data})
            async for msg in ws:
                if msg.type.name == "TEXT" and '"subscription_confirmed"' in msg.data:
                    self._ready.set()
                if msg.type.name == "BINARY":
                    self.frames += 1
                self.bytes += len(msg.data)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def load(session: Any, url: str, n: int) -> None:
    body = {"nodes": [{"id": i} for i in range(n)],
            "edges": [{"source": a, "target": b} for a, b in random_edges(n)]}
    async with session.put(f"{url}/api/graph", json=body, timeout=None) as r:
        assert r.status == 200, await r.text()


async def until_rest(session: Any, url: str, limit: float) -> float:
    started = time.monotonic()
    while not (await layout(session, url))["at_rest"]:
        await asyncio.sleep(0.25)
        if time.monotonic() - started > limit:
            raise SystemExit(f"no rest in {limit:.0f} s")
    return time.monotonic() - started


async def window(viewers: list[Viewer], seconds: float) -> list[float]:
    for v in viewers:
        v.take()
    await asyncio.sleep(seconds)
    return [v.take()[0] / seconds for v in viewers]


async def through_the_daemon(state: Path) -> dict[str, Any]:
    import aiohttp

    out: dict[str, Any] = {}
    daemon = Daemon(state)
    try:
        async with aiohttp.ClientSession() as session:
            for n in (10_000, 100_000):
                viewers = [Viewer(session, daemon.url, 2), Viewer(session, daemon.url, 3)]
                for v in viewers:
                    await v.start()
                for v in viewers:
                    v.take()
                started = time.monotonic()
                await load(session, daemon.url, n)  # the first full frames are counted
                await asyncio.sleep(max(0.0, CONVERGE_S - (time.monotonic() - started)))
                took = time.monotonic() - started
                out[f"converging_{n}"] = [v.take()[0] / took for v in viewers]
                print(f"  {n:,} nodes converging, {took:.0f} s: v2 "
                      f"{out[f'converging_{n}'][0] / 1e6:.2f} MB/s, v3 "
                      f"{out[f'converging_{n}'][1] / 1e6:.3f} MB/s per viewer", flush=True)
                if n == 10_000:
                    rest_s = await until_rest(session, daemon.url, 600)
                    print(f"  at rest {rest_s:.0f} s later", flush=True)
                    out["rest"] = await window(viewers, REST_S)
                    out["drag"] = await drag(session, daemon.url, viewers)
                for v in viewers:
                    await v.stop()
    finally:
        daemon.stop()
    return out


async def drag(session: Any, url: str, viewers: list[Viewer]) -> list[float]:
    """Node 17 dragged around a circle at 30 Hz for DRAG_S, by a third connection."""
    from actors.graph import KNOWLEDGE_FLAG

    async with session.get(f"{url}/api/graph?kind=knowledge") as r:
        nodes = (await r.json())["knowledge"]["nodes"]
    x0, y0, z0 = next(node["position"] for node in nodes if node["id"] == 17)
    for v in viewers:
        v.take()
    started = time.monotonic()
    async with session.ws_connect(url.replace("http", "ws") + "/wss") as ws:
        k = 0
        while (t := time.monotonic() - started) < DRAG_S:
            angle = 2 * math.pi * t / DRAG_S
            record = struct.pack("<I3f3ffi", KNOWLEDGE_FLAG | 17, x0 + 40 * math.cos(angle),
                                 y0 + 40 * math.sin(angle), z0, 0, 0, 0, math.inf, -1)
            await ws.send_bytes(record)
            k += 1
            await asyncio.sleep(max(0.0, started + k / 30 - time.monotonic()))
    took = time.monotonic() - started
    return [v.take()[0] / took for v in viewers]


def encode_cpu(n: int = 100_000, frames: int = 30) -> dict[str, float]:
    """Median ms per frame to encode the engine's own converging frames at ``n`` nodes: the v3
    chain (quantize, compare, encode the shared delta) and v2 (the moved nodes' records)."""
    from gpu import LayoutEngine, SimParams

    src, dst = np.array(random_edges(n), dtype=np.int64).T
    engine = LayoutEngine(SimParams(place_max_nodes=0), backend="cpu")
    ids = (np.arange(n) | 0x40000000).astype(np.uint32)
    engine.set_graph(np.arange(n, dtype=np.int64), src, dst)
    engine.step(20)
    chain = Chain()
    chain.advance(ids, engine.positions(), 5000.0)
    chain.frame_for(None)
    last = engine.positions()
    v2_ms, v3_ms, v3_bytes = [], [], []
    for _ in range(frames):
        engine.step(2)  # the layout actor's 60 Hz ticks between 30 Hz frames
        pos, vel = engine.positions(), engine.velocities()
        t = time.perf_counter()
        moved = ((pos - last) ** 2).sum(axis=1) > 0.01**2
        encode_records(ids[moved], pos[moved], vel[moved])
        v2_ms.append((time.perf_counter() - t) * 1e3)
        last = pos
        at = chain.state
        t = time.perf_counter()
        chain.advance(ids, pos, 5000.0)
        data = chain.frame_for(at)
        v3_ms.append((time.perf_counter() - t) * 1e3)
        v3_bytes.append(len(data or b""))
    return {"v2": statistics.median(v2_ms), "v3": statistics.median(v3_ms),
            "v3_bytes": statistics.median(v3_bytes)}


def deflate(n: int = 10_000) -> list[tuple[str, int, int, float]]:
    """(frame, bytes, deflated bytes, ms) at aiohttp's level, per viewer and frame."""
    rng = np.random.default_rng(0)
    ids = (np.arange(n) | 0x40000000).astype(np.uint32)
    pos = (rng.normal(size=(n, 3)) * 400).astype(np.float32)
    chain = Chain()
    chain.advance(ids, pos, 5000.0)
    key = chain.frame_for(None) or b""
    moved = pos + (rng.normal(size=pos.shape) * 1.5).astype(np.float32)
    at = chain.state
    chain.advance(ids, moved, 5000.0)
    delta = chain.frame_for(at) or b""
    out = []
    for name, data in (("v2 frame", encode_records(ids, moved, moved - pos)),
                       ("v3 keyframe", key), ("v3 delta", delta)):
        times, size = [], 0
        for _ in range(5):
            z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
            t = time.perf_counter()
            size = len(z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH))
            times.append((time.perf_counter() - t) * 1e3)
        out.append((name, len(data), size, statistics.median(times)))
    return out


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-frames-") as folder:
        f = asyncio.run(through_the_daemon(Path(folder)))
    failed = 0
    print("\n/wss bytes per viewer-second, v2 and v3 side by side (33 ms interval):")
    for n in (10_000, 100_000):
        v2, v3 = f[f"converging_{n}"]
        ratio = v2 / max(v3, 1.0)
        ok = ratio >= 5
        failed += int(not ok)
        print(f"[{'PASS' if ok else 'FAIL'}] converging, {n:,} nodes, first full frame included: "
              f"v3 {ratio:.1f}x fewer bytes than v2 ({v3 / 1e6:.3f} against {v2 / 1e6:.2f} MB/s; "
              f"target >= 5x, 10x the stretch)")
    v2, v3 = f["drag"]
    print(f"  dragging one node of the settled 10,000: v2 {v2 / 1e3:.1f} KB/s, v3 {v3 / 1e3:.1f} "
          f"KB/s: {v2 / max(v3, 1.0):.0f}x (a v2 viewer reading every other 60 Hz frame gets "
          f"every node each time: its deltas need the frame just before)")
    v2, v3 = f["rest"]
    ok = v3 < 1000
    failed += int(not ok)
    print(f"[{'PASS' if ok else 'FAIL'}] at rest, 10,000 nodes: v3 {v3:.0f} B/s per viewer "
          f"(v2 {v2:.0f} B/s; target < 1 KB/s)")
    cpu = encode_cpu()
    print(f"  server encode per frame, 100,000 converging nodes (median of 30): v3 {cpu['v3']:.1f} ms "
          f"(quantize, compare, shared delta of {cpu['v3_bytes'] / 1e3:.0f} kB), v2 {cpu['v2']:.1f} ms "
          f"(the moved nodes' records)")
    print("  permessage-deflate at aiohttp's level, 10,000 nodes, per viewer and frame:")
    for name, size, packed, ms in deflate():
        print(f"    {name:12} {size:>9,} B -> {packed:>9,} B ({packed / size:.2f}) in {ms:.2f} ms")
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
