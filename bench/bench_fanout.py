"""``/wss`` fan-out: a 1,000-node frame at 30 Hz to 200 clients on loopback for 10 s.

The daemon's real app (tree, hub, routes) runs in this process; the clients run in a separate
process so that their CPU is not counted as the server's. Run 1: every client reads as fast as
it can. Run 2: the same, with 10 of the clients reading one frame a second. Target: at least
29.5 frames/s per client in run 1, and the fast clients of run 2 keep at least 0.95 of run 1's
rate (a slow reader must not slow anyone else).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CLIENTS = 200
SLOW = 10
NODES = 1_000
HZ = 30.0
SECONDS = 10.0
WARMUP = 2.0


CLIENT_SCRIPT = r"""
import asyncio, json, struct, sys, time
import aiohttp

AGES = []
PROTOCOL = 2

def age_of(frame):
    # the first record's x is the publisher's monotonic clock (mod 1000 s) when it published
    sent = struct.unpack_from("<f", frame, 1 + 4)[0]
    return (time.monotonic() % 1000.0 - sent) % 1000.0

async def client(session, url, slow, start_at, stop_at, counts, index):
    async with session.ws_connect(url, max_msg_size=0) as ws:
        await ws.receive()  # connection_established
        data = {"interval": 0}
        if PROTOCOL == 3:
            data["protocol"] = 3
        await ws.send_json({"type": "subscribe_position_updates", "data": data})
        n = 0
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.BINARY and msg.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.monotonic()
            if msg.type == aiohttp.WSMsgType.BINARY and start_at <= now < stop_at:
                n += 1
                if not slow and PROTOCOL == 2:  # v3 quantizes the clock away: v2 only
                    AGES.append(age_of(msg.data))
            if now >= stop_at:
                break
            if slow:
                await asyncio.sleep(1.0)
        counts[index] = n

async def main():
    global PROTOCOL
    url, fast, slow = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    warmup, seconds = float(sys.argv[4]), float(sys.argv[5])
    PROTOCOL = int(sys.argv[6])
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        start_at = time.monotonic() + warmup
        stop_at = start_at + seconds
        counts = [0] * (fast + slow)
        await asyncio.gather(*(client(session, url, i >= fast, start_at, stop_at, counts, i)
                               for i in range(fast + slow)))
    ages = sorted(AGES) or [0.0]
    print(json.dumps({"fast": counts[:fast], "slow": counts[fast:], "seconds": seconds,
                      "p99_age_s": ages[int(0.99 * (len(ages) - 1))]}))

asyncio.run(main())
"""


async def _run(fast: int, slow: int, protocol: int = 2) -> dict[str, float]:
    import structlog
    from aiohttp.test_utils import TestServer

    from actors.graph import KNOWLEDGE_FLAG
    from actors.messages import PositionFrame
    from hive.config import load_config
    from hive.daemon import assemble
    from supervisor import SupervisionTree, SupervisorSpec

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    config = load_config(env={})
    tree = SupervisionTree(SupervisorSpec("root"))  # an empty tree: only the front end is measured
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, tree.start)
    app = assemble(tree, config, loop)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    from transport.services import SERVICES

    hub = app[SERVICES].hub
    url = f"ws://127.0.0.1:{server.port}/wss"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT_SCRIPT, url, str(fast), str(slow), str(WARMUP), str(SECONDS),
        str(protocol), stdout=subprocess.PIPE)
    ids = (np.arange(NODES) | KNOWLEDGE_FLAG).astype(np.uint32)
    rng = np.random.default_rng(0)
    seq = 0
    period = 1.0 / HZ
    next_at = time.monotonic()
    usage0 = cpu0 = wall0 = None
    measuring = False
    start_measure = time.monotonic() + WARMUP
    while proc.returncode is None:
        now = time.monotonic()
        if not measuring and now >= start_measure:
            measuring = True
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
            wall0 = now
        if measuring and wall0 is not None and now >= wall0 + SECONDS and cpu0 is None:
            usage1 = resource.getrusage(resource.RUSAGE_SELF)
            assert usage0 is not None
            cpu0 = (usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime)
        seq += 1
        pos = rng.standard_normal((NODES, 3)).astype(np.float32) * 100
        pos[0, 0] = time.monotonic() % 1000.0  # read back by the clients: the frame's age
        hub.publish(PositionFrame.make(seq, ids, pos, np.zeros_like(pos),
                                       np.ones(NODES, dtype=bool), False))
        next_at += period
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), max(0.0, next_at - time.monotonic()))
    out = json.loads((await proc.stdout.read()).decode()) if proc.stdout else {}
    await server.close()
    await loop.run_in_executor(None, tree.stop, 5.0)
    rates = [c / out["seconds"] for c in out["fast"]]
    return {
        "clients": fast + slow,
        "mean_fps": statistics.mean(rates),
        "min_fps": min(rates),
        "server_cpu": (cpu0 or 0.0) / SECONDS,
        "p99_age_ms": out["p99_age_s"] * 1000,
        "slow_fps": statistics.mean([c / out["seconds"] for c in out["slow"]]) if slow else 0.0,
    }


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    base = asyncio.run(_run(CLIENTS, 0))
    mixed = asyncio.run(_run(CLIENTS - SLOW, SLOW))
    print(f"{NODES}-node frames ({1 + 36 * NODES:,} bytes) at {HZ:g} Hz for {SECONDS:g} s")
    print(f"{'run':34} {'fast fps mean':>13} {'min':>7} {'server CPU':>11} {'p99 age ms':>11}")
    print("(age: from publish to a client's receipt, read by the clients from the frame itself)")
    for name, r in ((f"{CLIENTS} fast clients", base),
                    (f"{CLIENTS - SLOW} fast + {SLOW} slow readers", mixed)):
        print(f"{name:34} {r['mean_fps']:13.2f} {r['min_fps']:7.2f} {r['server_cpu']:10.0%} "
              f"{r['p99_age_ms']:11.1f}")
    ratio = mixed["mean_fps"] / base["mean_fps"]
    print(f"slow readers got {mixed['slow_fps']:.2f} frames/s (the rest were dropped, counted)")
    print(f"[{'PASS' if base['mean_fps'] >= 29.5 else 'MISS'}] frames/s per client "
          f"{base['mean_fps']:.2f} (target >= 29.5)")
    print(f"[{'PASS' if ratio >= 0.95 else 'MISS'}] fast clients next to slow ones: "
          f"{ratio:.3f} of the first run (target >= 0.95)")
    base3 = asyncio.run(_run(CLIENTS, 0, protocol=3))
    mixed3 = asyncio.run(_run(CLIENTS - SLOW, SLOW, protocol=3))
    print("\nthe same over protocol v3 (every node moves far each frame: a delta of absolute "
          "coordinates), no age:")
    for name, r in ((f"{CLIENTS} fast clients", base3),
                    (f"{CLIENTS - SLOW} fast + {SLOW} slow readers", mixed3)):
        print(f"{name:34} {r['mean_fps']:13.2f} {r['min_fps']:7.2f} {r['server_cpu']:10.0%}")
    ratio3 = mixed3["mean_fps"] / base3["mean_fps"]
    print(f"[{'PASS' if base3['mean_fps'] >= 29.5 else 'MISS'}] v3 frames/s per client "
          f"{base3['mean_fps']:.2f} (target >= 29.5)")
    print(f"[{'PASS' if ratio3 >= 0.95 else 'MISS'}] v3 fast clients next to slow ones: "
          f"{ratio3:.3f} of the first run (target >= 0.95)")
    return 0
