"""Agent telemetry: typed agents parsed from MCP answers, and the agent graph built from them.

Two servers speak slightly different shapes: claude-flow's ``agent_list`` gives ``agentId``,
``agentType``, ``status``, ``health``, ``taskCount``; the original system's bridge gave ``id``,
``type``, ``cpuUsage``, ``memoryUsage``, ``swarmId``... Both are accepted. CPU and memory are
fractions in [0, 1]; raw values above 1 are percentages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from actors.claude_flow import AGENT_TYPES
from actors.graph import Graph, GraphEdge, GraphNode, NodeKind

__all__ = [
    "MESH_EDGE_LIMIT",
    "Agent",
    "NodeIds",
    "Swarm",
    "Telemetry",
    "agent_graph",
    "parse_agents",
    "parse_swarm",
]


MESH_EDGE_LIMIT = 16  # a mesh larger than this is drawn as a ring, not n^2 edges


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    type: str
    status: str
    health: float
    cpu: float
    memory: float
    tasks_active: int
    tasks_completed: int
    tokens: int
    swarm_id: str
    created_at: str
    shard: int = 0  # which pooled server reported it

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": self.type, "status": self.status, "health": self.health,
            "cpuUsage": self.cpu, "memoryUsage": self.memory, "tasksActive": self.tasks_active,
            "tasksCompleted": self.tasks_completed, "tokens": self.tokens,
            "swarmId": self.swarm_id, "createdAt": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class Swarm:
    id: str
    topology: str
    status: str
    agent_count: int
    shard: int = 0


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One poll's result across every pooled server."""

    agents: tuple[Agent, ...]
    swarms: tuple[Swarm, ...]
    polled_at: float
    errors: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "agents": [a.to_json() for a in self.agents],
            "swarms": [{"id": s.id, "topology": s.topology, "status": s.status,
                        "agentCount": s.agent_count} for s in self.swarms],
            "total": len(self.agents),
            "polledAt": self.polled_at,
            "errors": list(self.errors),
        }


def _fraction(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    if math.isnan(number) or number < 0:
        return 0.0
    return min(1.0, number / 100.0 if number > 1.0 else number)


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _health(value: Any) -> float:
    if isinstance(value, str):
        return {"healthy": 1.0, "degraded": 0.5, "unhealthy": 0.0}.get(value.lower(), 0.5)
    return _fraction(value if value is not None else 1.0)


_ANNOUNCED = re.compile(r"^s([0-9a-f]{32})-")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def announced_id(worker_id: str, swarm_id: str) -> str:
    """The data-plane id of a swarm's worker: ``s<swarm id, hex>-<worker id>``. The swarm is
    part of the name, so every poll (and every restart) knows which swarm an agent belongs to;
    the form is one claude-flow accepts for an agent id (a letter first, then letters, digits,
    ``_`` and ``-``, at most 64 characters)."""
    worker = _UNSAFE.sub("-", worker_id)[-30:]
    return f"s{swarm_id.replace('-', '')}-{worker}"


def swarm_of(agent_id: str) -> str:
    """The swarm in an :func:`announced_id` ("" for any other agent)."""
    match = _ANNOUNCED.match(agent_id)
    if not match:
        return ""
    h = match.group(1)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_agents(payload: Any, shard: int = 0, default_swarm: str = "") -> list[Agent]:
    items = payload.get("agents", []) if isinstance(payload, Mapping) else payload
    agents = []
    for raw in items if isinstance(items, Sequence) else []:
        if not isinstance(raw, Mapping):
            continue
        agent_id = raw.get("agentId") or raw.get("id")
        if not agent_id:
            continue
        kind = str(raw.get("agentType") or raw.get("type") or "generic").lower()
        agents.append(Agent(
            id=str(agent_id), type=kind if kind in AGENT_TYPES else "generic",
            status=str(raw.get("status", "unknown")), health=_health(raw.get("health")),
            cpu=_fraction(raw.get("cpuUsage")), memory=_fraction(raw.get("memoryUsage")),
            tasks_active=_int(raw.get("tasksActive", raw.get("taskCount"))),
            tasks_completed=_int(raw.get("tasksCompleted")), tokens=_int(raw.get("tokens")),
            swarm_id=str(raw.get("swarmId") or swarm_of(str(agent_id)) or default_swarm),
            created_at=str(raw.get("createdAt", "")), shard=shard,
        ))
    return agents


def parse_swarm(payload: Any, shard: int = 0) -> Swarm | None:
    if not isinstance(payload, Mapping) or not payload.get("swarmId"):
        return None
    return Swarm(str(payload["swarmId"]), str(payload.get("topology", "mesh")),
                 str(payload.get("status", "unknown")),
                 _int(payload.get("agentCount")), shard)


class NodeIds:
    """Stable small node ids for agent id strings: an agent keeps its node (and so its place
    in the layout) across polls. Immutable; ``assign`` returns a new table."""

    def __init__(self, table: Mapping[str, int] | None = None, next_id: int = 1) -> None:
        self._table = dict(table or {})
        self._next = next_id

    def assign(self, agent_ids: Iterable[str]) -> NodeIds:
        table = dict(self._table)
        next_id = self._next
        for agent_id in agent_ids:
            if agent_id not in table:
                table[agent_id] = next_id
                next_id += 1
        return NodeIds(table, next_id)

    def without(self, agent_ids: Iterable[str]) -> NodeIds:
        """The table less agents that are gone for good (a retired swarm's): it would otherwise
        grow with every agent the daemon ever saw. Their numbers are not reused."""
        gone = set(agent_ids)
        return NodeIds({k: v for k, v in self._table.items() if k not in gone}, self._next)

    def __len__(self) -> int:
        return len(self._table)

    def __getitem__(self, agent_id: str) -> int:
        return self._table[agent_id]


def agent_graph(telemetry: Telemetry, ids: NodeIds) -> Graph:
    """Agents as nodes; in each swarm, edges to its coordinator (hierarchical, star) or
    between members (mesh, ring)."""
    nodes = [
        GraphNode(ids[a.id], f"{a.type}:{a.id[:8]}", {
            "agentId": a.id, "type": a.type, "status": a.status, "health": a.health,
            "cpu": a.cpu, "memory": a.memory, "tasks": a.tasks_active, "tokens": a.tokens,
            "swarmId": a.swarm_id,
        })
        for a in telemetry.agents
    ]
    topology = {(s.shard, s.id): s.topology for s in telemetry.swarms}
    groups: dict[tuple[int, str], list[Agent]] = {}
    for agent in telemetry.agents:
        groups.setdefault((agent.shard, agent.swarm_id), []).append(agent)
    edges: list[GraphEdge] = []
    for key, members in groups.items():
        if len(members) < 2:
            continue
        shape = topology.get(key, "")
        node = [ids[a.id] for a in members]
        if shape in ("mesh", "ring") or (shape == "" and key[1] == ""):
            if shape == "mesh" and len(node) <= MESH_EDGE_LIMIT:
                edges += [GraphEdge(a, b) for i, a in enumerate(node) for b in node[i + 1:]]
            else:
                edges += [GraphEdge(a, node[(i + 1) % len(node)]) for i, a in enumerate(node)]
        else:
            hub = next((ids[a.id] for a in members if a.type == "coordinator"), node[0])
            edges += [GraphEdge(hub, n) for n in node if n != hub]
    return Graph.build(NodeKind.AGENT, nodes, edges)
