"""What the hive-mind actor understands and answers (import these, not the actor module)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_TASK_CHARS",
    "PRIORITIES",
    "STATUSES",
    "STRATEGY_TOPOLOGY",
    "GetSwarm",
    "ListSwarms",
    "Session",
    "SpawnRequest",
    "SpawnSwarm",
    "StopSwarm",
    "normalise_priority",
]


MAX_TASK_CHARS = 10_000


PRIORITIES = ("low", "medium", "high")


STATUSES = ("spawning", "active", "paused", "completing", "completed", "failed", "unknown")


# The API's strategies and the topologies claude-flow's hive-mind accepts
# (hierarchical, mesh, hierarchical-mesh, adaptive).
STRATEGY_TOPOLOGY = {
    "hierarchical": "hierarchical", "mesh": "mesh", "ring": "mesh", "star": "hierarchical",
    "adaptive": "adaptive", "balanced": "hierarchical-mesh",
}


def normalise_priority(priority: str | None) -> str:
    if priority is not None and not isinstance(priority, str):
        raise ValueError(f"priority must be a string, one of {', '.join(PRIORITIES)}")
    value = (priority or "medium").lower()
    if value == "critical":
        return "high"
    if value == "normal":
        return "medium"
    if value not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}")
    return value


@dataclass(frozen=True, slots=True)
class SpawnRequest:
    task: str
    priority: str = "medium"
    strategy: str | None = None
    max_agents: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task.strip():
            raise ValueError("task must be a non-empty string")
        if len(self.task) > MAX_TASK_CHARS:
            raise ValueError(f"task is {len(self.task)} characters; the limit is {MAX_TASK_CHARS}")
        if "\x00" in self.task:
            raise ValueError("task must not contain NUL characters")
        try:
            self.task.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("task must be valid Unicode text (it has a lone surrogate)") from None
        object.__setattr__(self, "priority", normalise_priority(self.priority))
        if self.strategy is not None and (
            not isinstance(self.strategy, str) or self.strategy not in STRATEGY_TOPOLOGY
        ):
            raise ValueError(f"strategy must be one of {', '.join(STRATEGY_TOPOLOGY)}")
        if self.max_agents is not None and (
            isinstance(self.max_agents, bool) or not isinstance(self.max_agents, int)
            or not 1 <= self.max_agents <= 100
        ):
            raise ValueError("max_agents must be an integer in [1, 100]")


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    status: str
    task: str = ""
    priority: str = "medium"
    topology: str = ""
    workers: tuple[Mapping[str, Any], ...] = ()
    created_at: str = ""
    updated_at: str = ""
    raw_status: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "task": self.task, "priority": self.priority,
            "topology": self.topology, "workers": [dict(w) for w in self.workers],
            "agentCount": len(self.workers), "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class SpawnSwarm:
    request: SpawnRequest
    # time.monotonic() after which the spawn must not begin: a caller that has given up by then
    # is told "not created", and its retry makes no duplicate (spawns run one at a time).
    start_by: float | None = None


@dataclass(frozen=True, slots=True)
class ListSwarms:
    refresh: bool = False


@dataclass(frozen=True, slots=True)
class GetSwarm:
    session_id: str


@dataclass(frozen=True, slots=True)
class StopSwarm:
    session_id: str
