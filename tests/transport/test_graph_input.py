"""Reading ``PUT /api/graph`` bodies: small ones on a thread, big ones in a real worker process
(forced here with a small ``inline_bytes``), which is stopped when idle and replaced when killed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest

from tests.conftest import alive
from transport.graph_input import BadGraph, GraphReader

INLINE = 256


def body(nodes: int, edges: list[tuple[int, int]] | None = None, **extra: object) -> bytes:
    graph = {"nodes": [{"id": i, "label": f"n{i}"} for i in range(nodes)],
             "edges": [{"source": s, "target": t} for s, t in (edges or [])], **extra}
    return json.dumps(graph).encode()


def worker_pids(reader: GraphReader) -> list[int]:
    pool = reader._pool
    return list(pool._processes) if pool is not None and pool._processes else []


async def test_a_big_body_is_read_in_the_worker_and_checked_there() -> None:
    reader = GraphReader(inline_bytes=INLINE)
    try:
        graph = await reader.read(body(50, [(0, 1), (1, 2)]))
        assert len(graph.ids) == 50 and len(graph.sources) == 2 and worker_pids(reader)
        bad = [{"id": i} for i in range(60)]
        bad[7] = {"id": "7"}
        with pytest.raises(BadGraph, match=r"nodes\[7\]\.id must be an integer"):
            await reader.read(json.dumps({"nodes": bad}).encode())
        with pytest.raises(BadGraph, match="unknown"):
            await reader.read(body(50, [(0, 99)]))
    finally:
        reader.close()


async def test_a_worker_killed_while_idle_is_replaced_for_the_next_body() -> None:
    """Found by review: the next big body after the worker died (killed, out of memory) was a
    503 for its sender, though nothing was wrong with it."""
    reader = GraphReader(inline_bytes=INLINE)
    try:
        await reader.read(body(50))
        [pid] = worker_pids(reader)
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.3)
        graph = await reader.read(body(60))
        assert len(graph.ids) == 60 and worker_pids(reader) and worker_pids(reader) != [pid]
    finally:
        reader.close()


async def test_the_worker_stops_when_idle() -> None:
    """Found by review: the worker kept the peak memory of the biggest body it ever read."""
    reader = GraphReader(inline_bytes=INLINE, idle_s=0.3)
    try:
        await reader.read(body(50))
        [pid] = worker_pids(reader)
        deadline = time.monotonic() + 10
        while reader.describe()["worker"] or alive(pid):
            assert time.monotonic() < deadline, "the idle worker did not stop"
            await asyncio.sleep(0.1)
        assert len((await reader.read(body(70))).ids) == 70  # a new one for the next body
    finally:
        reader.close()
