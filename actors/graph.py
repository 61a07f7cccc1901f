"""The graph vocabulary shared by the layout, the telemetry and the wire: nodes, edges, kinds.

Node ids live below 2**30 so that the wire format can carry the node's kind in the top bits of
the same 32-bit id (protocol v2 of the original system): bit 31 marks an agent node, bit 30 a
knowledge node. Inside the layout, ``wire_id(kind, id)`` is also the node's unique key, so an
agent and a knowledge node may share a numeric id.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "AGENT_FLAG",
    "ID_MASK",
    "KNOWLEDGE_FLAG",
    "MAX_EDGE_WEIGHT",
    "MAX_NODE_ID",
    "Graph",
    "GraphEdge",
    "GraphNode",
    "NodeKind",
    "wire_id",
]


AGENT_FLAG = 0x80000000
KNOWLEDGE_FLAG = 0x40000000
ID_MASK = 0x3FFFFFFF
MAX_NODE_ID = 1 << 30  # exclusive
# A spring's strength factor. Heavier springs would only hit the force clamp, and past float32's
# range the spring force becomes inf and then NaN: the layout would be lost.
MAX_EDGE_WEIGHT = 1.0e6


class NodeKind(enum.StrEnum):
    AGENT = "agent"
    KNOWLEDGE = "knowledge"

    @property
    def flag(self) -> int:
        return AGENT_FLAG if self is NodeKind.AGENT else KNOWLEDGE_FLAG


def wire_id(kind: NodeKind, node_id: int) -> int:
    return kind.flag | node_id


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class GraphNode:
    id: int
    label: str = ""
    attrs: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        if not 0 <= self.id < MAX_NODE_ID:
            raise ValueError(f"node id {self.id} is outside [0, 2^30)")


@dataclass(frozen=True, slots=True)
class GraphEdge:
    source: int
    target: int
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and 0.0 <= self.weight <= MAX_EDGE_WEIGHT):
            raise ValueError(f"edge weight {self.weight!r} is outside [0, {MAX_EDGE_WEIGHT:g}]")


def _frozen(array: Any, dtype: Any) -> np.ndarray:
    out = np.array(array, dtype=dtype, copy=True).reshape(-1)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class Graph:
    """One kind's whole graph, column by column. Immutable (read-only arrays): the layout keeps
    it as its last good state.

    Columns, not an object per node: a million-node knowledge graph is validated, handed to the
    layout and saved as a handful of arrays, in milliseconds and without holding the GIL for
    long. ``nodes`` and ``edges`` give the per-item view, for the small agent graph and tests.
    """

    kind: NodeKind
    ids: np.ndarray  # int64, unique, in [0, 2^30)
    labels: tuple[str, ...]
    sources: np.ndarray  # int64 node ids, each one of ``ids``
    targets: np.ndarray
    weights: np.ndarray  # float64 in [0, MAX_EDGE_WEIGHT]
    attrs: tuple[Mapping[str, Any], ...] = ()  # per node, or () when no node has any

    @classmethod
    def empty(cls, kind: NodeKind) -> Graph:
        return cls.from_columns(kind, [], [], [], [], [])

    @classmethod
    def build(cls, kind: NodeKind, nodes: Iterable[GraphNode], edges: Iterable[GraphEdge]) -> Graph:
        """From per-item objects (each already checked its own fields)."""
        node_list, edge_list = list(nodes), list(edges)
        attrs = tuple(n.attrs for n in node_list)
        return cls.from_columns(
            kind, [n.id for n in node_list], [n.label for n in node_list],
            [e.source for e in edge_list], [e.target for e in edge_list],
            [e.weight for e in edge_list], attrs if any(attrs) else ())

    @classmethod
    def from_columns(cls, kind: NodeKind, ids: Any, labels: Sequence[str], sources: Any,
                     targets: Any, weights: Any, attrs: tuple[Mapping[str, Any], ...] = (),
                     *, validate: bool = True) -> Graph:
        """Check (ids in range and unique, edges between known nodes, weights in range) and
        freeze; ``validate=False`` for columns already checked (by the worker process that read
        them, :mod:`transport.graph_input`) and for tests of what checks downstream."""
        graph = cls(NodeKind(kind), _frozen(ids, np.int64), tuple(labels), _frozen(sources, np.int64),
                    _frozen(targets, np.int64), _frozen(weights, np.float64), tuple(attrs))
        if validate:
            graph._check()
        return graph

    def _check(self) -> None:
        ids, n = self.ids, len(self.ids)
        if len(self.labels) != n or (self.attrs and len(self.attrs) != n):
            raise ValueError("one label (and attrs) per node")
        if not len(self.sources) == len(self.targets) == len(self.weights):
            raise ValueError("one source, target and weight per edge")
        outside = np.flatnonzero((ids < 0) | (ids >= MAX_NODE_ID))
        if outside.size:
            raise ValueError(f"nodes[{outside[0]}]: node id {ids[outside[0]]} is outside [0, 2^30)")
        known = np.sort(ids)
        if n > 1 and bool(np.any(known[1:] == known[:-1])):
            duplicate = int(known[1:][known[1:] == known[:-1]][0])
            raise ValueError(f"node ids must be unique ({duplicate} appears twice)")
        for column in (self.sources, self.targets):
            if not len(column):
                continue
            if n == 0:
                raise ValueError(f"edges[0] references unknown node {column[0]}")
            missing = np.flatnonzero(known[np.minimum(np.searchsorted(known, column), n - 1)] != column)
            if missing.size:
                raise ValueError(f"edges[{missing[0]}] references unknown node {column[missing[0]]}")
        w = self.weights
        bad = np.flatnonzero(~(np.isfinite(w) & (w >= 0.0) & (w <= MAX_EDGE_WEIGHT)))
        if bad.size:
            raise ValueError(f"edges[{bad[0]}]: edge weight {w[bad[0]]!r} is outside [0, {MAX_EDGE_WEIGHT:g}]")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (self.kind is other.kind and self.labels == other.labels and self.attrs == other.attrs
                and all(np.array_equal(a, b) for a, b in (
                    (self.ids, other.ids), (self.sources, other.sources),
                    (self.targets, other.targets), (self.weights, other.weights))))

    __hash__ = None  # type: ignore[assignment]  # equal graphs, unhashable arrays

    @property
    def node_count(self) -> int:
        return len(self.ids)

    @property
    def edge_count(self) -> int:
        return len(self.sources)

    @property
    def nodes(self) -> tuple[GraphNode, ...]:
        attrs = self.attrs or (_EMPTY,) * len(self.ids)
        return tuple(GraphNode(i, label, a) for i, label, a in zip(self.ids.tolist(), self.labels, attrs,
                                                                 strict=True))

    @property
    def edges(self) -> tuple[GraphEdge, ...]:
        return tuple(GraphEdge(s, t, w) for s, t, w in zip(
            self.sources.tolist(), self.targets.tolist(), self.weights.tolist(), strict=True))

    def updated(
        self, add_nodes: Iterable[GraphNode] = (), remove_nodes: Iterable[int] = (),
        add_edges: Iterable[GraphEdge] = (), remove_edges: Iterable[tuple[int, int]] = (),
    ) -> Graph:
        """A new graph with these changes (a node added again replaces the old one)."""
        gone = set(remove_nodes)
        added = {n.id: n for n in add_nodes}
        nodes = [added.pop(n.id, n) for n in self.nodes if n.id not in gone]
        nodes += added.values()
        cut = set(remove_edges)
        edges = [e for e in self.edges if (e.source, e.target) not in cut
                 and e.source not in gone and e.target not in gone]
        return Graph.build(self.kind, nodes, [*edges, *add_edges])

    def to_json(self) -> dict[str, Any]:
        attrs = self.attrs or (_EMPTY,) * len(self.ids)
        return {
            "nodes": [{"id": i, "label": label, **dict(a)}
                      for i, label, a in zip(self.ids.tolist(), self.labels, attrs, strict=True)],
            "edges": [{"source": s, "target": t, "weight": w} for s, t, w in zip(
                self.sources.tolist(), self.targets.tolist(), self.weights.tolist(), strict=True)],
        }
