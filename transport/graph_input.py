"""A ``PUT /api/graph`` body to graph columns, read where it cannot hold up the daemon.

Found under load: a 1,000,000-node body (64.7 MB) parsed on a thread held the GIL for the 18 s
it took, so ``/api/health`` took 9 s and the layout missed its status deadline. Bodies above
:data:`INLINE_BYTES` are parsed and checked in a worker process (its own GIL; one, started on
first use, stopped when idle), which hands back a few arrays; small ones stay on a thread, where a
process would cost more than it saves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.graph import MAX_EDGE_WEIGHT, MAX_NODE_ID, Graph, NodeKind
from transport.json_input import parse_json

__all__ = ["IDLE_S", "INLINE_BYTES", "MAX_EDGES", "MAX_NODES", "BadGraph", "Columns", "GraphReader",
           "read_columns", "read_graph"]

MAX_NODES = 1_000_000
MAX_EDGES = 5_000_000
INLINE_BYTES = 1 << 20
IDLE_S = 60.0  # the worker process stops after this long without a big body


class BadGraph(ValueError):
    """The body is not a graph we take; the message says where and why."""


@dataclass(frozen=True)
class Columns:
    """What crosses back from the worker: small to pickle (arrays and one list of labels)."""

    ids: np.ndarray
    labels: list[str]
    sources: np.ndarray
    targets: np.ndarray
    weights: np.ndarray

    def graph(self) -> Graph:
        try:
            return Graph.from_columns(NodeKind.KNOWLEDGE, self.ids, self.labels, self.sources,
                                      self.targets, self.weights)
        except ValueError as exc:  # duplicate ids, an edge to an unknown node
            raise BadGraph(str(exc)) from None


def _parse(raw: bytes) -> Columns:
    """Parse one body and check each item; every problem is a :class:`BadGraph` naming it."""
    try:
        body = parse_json(raw)
    except ValueError as exc:
        raise BadGraph(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadGraph("body must be a JSON object with 'nodes' and 'edges'")
    nodes_in, edges_in = body.get("nodes"), body.get("edges", [])
    if not isinstance(nodes_in, list):
        raise BadGraph("'nodes' must be a list")
    if not isinstance(edges_in, list):
        raise BadGraph("'edges' must be a list")
    if len(nodes_in) > MAX_NODES:
        raise BadGraph(f"too many nodes: {len(nodes_in)} > {MAX_NODES}")
    if len(edges_in) > MAX_EDGES:
        raise BadGraph(f"too many edges: {len(edges_in)} > {MAX_EDGES}")
    ids = np.empty(len(nodes_in), dtype=np.int64)
    labels: list[str] = []
    for i, raw_node in enumerate(nodes_in):
        if not isinstance(raw_node, dict):
            raise BadGraph(f"nodes[{i}] must be an object")
        node_id = raw_node.get("id")
        if isinstance(node_id, bool) or not isinstance(node_id, int):
            raise BadGraph(f"nodes[{i}].id must be an integer")
        if not 0 <= node_id < MAX_NODE_ID:
            raise BadGraph(f"nodes[{i}].id {node_id} is outside [0, 2^30)")
        if raw_node.get("kind", "knowledge") != "knowledge":
            raise BadGraph(f"nodes[{i}].kind must be 'knowledge' (agents come from telemetry)")
        label = raw_node.get("label", "")
        if not isinstance(label, str):
            raise BadGraph(f"nodes[{i}].label must be a string")
        ids[i] = node_id
        labels.append(label)
    sources = np.empty(len(edges_in), dtype=np.int64)
    targets = np.empty(len(edges_in), dtype=np.int64)
    weights = np.empty(len(edges_in), dtype=np.float64)
    for i, raw_edge in enumerate(edges_in):
        if not isinstance(raw_edge, dict):
            raise BadGraph(f"edges[{i}] must be an object")
        source, target = raw_edge.get("source"), raw_edge.get("target")
        if any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < MAX_NODE_ID
               for v in (source, target)):
            raise BadGraph(f"edges[{i}].source and .target must be integer node ids")
        weight = raw_edge.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
                0 <= weight <= MAX_EDGE_WEIGHT):
            raise BadGraph(f"edges[{i}].weight must be a number in [0, {MAX_EDGE_WEIGHT:g}]")
        assert isinstance(source, int) and isinstance(target, int)
        sources[i], targets[i], weights[i] = source, target, weight
    return Columns(ids, labels, sources, targets, weights)


def read_graph(raw: bytes) -> Graph:
    """A body to a checked graph (the small bodies' path, on a thread)."""
    return _parse(raw).graph()


def read_columns(raw: bytes) -> Columns:
    """A body to checked columns (the worker's path): the whole graph is checked here (ids
    unique, every edge's ends known), off the daemon, and only the columns cross back."""
    columns = _parse(raw)
    columns.graph()
    return columns


class GraphReader:
    """Reads bodies on a thread (small) or in its worker process (large). The worker is started
    on first use and stopped after :data:`IDLE_S` without a read: parsing a big body leaves it
    holding its peak memory, which a long-running daemon should not keep for nothing."""

    def __init__(self, inline_bytes: int = INLINE_BYTES, idle_s: float = IDLE_S) -> None:
        self.inline_bytes = inline_bytes
        self.idle_s = idle_s
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._in_flight = 0
        self._idle_timer: asyncio.TimerHandle | None = None

    async def read(self, raw: bytes) -> Graph:
        """The checked graph; :class:`BadGraph` for a body we do not take, ``BrokenExecutor``
        when the worker died twice on this body (killed, or out of memory)."""
        loop = asyncio.get_running_loop()
        if len(raw) <= self.inline_bytes:
            return await loop.run_in_executor(None, read_graph, raw)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._in_flight += 1
        try:
            columns = await self._in_worker(loop, raw)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0 and self._pool is not None:
                self._idle_timer = loop.call_later(self.idle_s, self.close)
        # checked in the worker already; the columns are frozen here without a second pass
        return Graph.from_columns(NodeKind.KNOWLEDGE, columns.ids, columns.labels, columns.sources,
                                  columns.targets, columns.weights, validate=False)

    async def _in_worker(self, loop: asyncio.AbstractEventLoop, raw: bytes) -> Columns:
        for attempt in (1, 2):  # a worker that died before this body (killed while idle): once more
            pool = self._worker()
            try:
                columns: Columns = await loop.run_in_executor(pool, read_columns, raw)
                return columns
            except concurrent.futures.BrokenExecutor:
                if self._pool is pool:  # not a fresh one another request already started
                    self._pool = None
                    pool.shutdown(wait=False, cancel_futures=True)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _worker(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fresh interpreter, none of the daemon's threads, locks or descriptors
            self._pool = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def describe(self) -> dict[str, Any]:
        return {"worker": self._pool is not None, "inline_bytes": self.inline_bytes}
