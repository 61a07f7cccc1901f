"""The graph vocabulary shared by the layout, the telemetry and the wire: nodes, edges, kinds.

Node ids live below 2**30 so that the wire format can carry the node's kind in the top bits of
the same 32-bit id (protocol v2 of the original system): bit 31 marks an agent node, bit 30 a
knowledge node. Inside the layout, ``wire_id(kind, id)`` is also the node's unique key, so an
agent and a knowledge node may share a numeric id.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

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


@dataclass(frozen=True, slots=True)
class Graph:
    """One kind's whole graph. Immutable: the layout keeps it as its last good state."""

    kind: NodeKind
    nodes: tuple[GraphNode, ...] = ()
    edges: tuple[GraphEdge, ...] = ()

    @classmethod
    def build(
        cls, kind: NodeKind, nodes: Iterable[GraphNode], edges: Iterable[GraphEdge]
    ) -> Graph:
        """Validate (unique ids, edges between known nodes) and freeze."""
        node_tuple = tuple(nodes)
        ids = {n.id for n in node_tuple}
        if len(ids) != len(node_tuple):
            raise ValueError("node ids must be unique")
        edge_tuple = tuple(edges)
        for index, edge in enumerate(edge_tuple):
            if edge.source not in ids or edge.target not in ids:
                missing = edge.source if edge.source not in ids else edge.target
                raise ValueError(f"edges[{index}] references unknown node {missing}")
        return cls(NodeKind(kind), node_tuple, edge_tuple)

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
        return {
            "nodes": [{"id": n.id, "label": n.label, **dict(n.attrs)} for n in self.nodes],
            "edges": [
                {"source": e.source, "target": e.target, "weight": e.weight} for e in self.edges
            ],
        }
