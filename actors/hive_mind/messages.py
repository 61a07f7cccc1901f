"""What the hive-mind actor understands and answers (import these, not the actor module)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CHARGE",
    "MAX_TASK_CHARS",
    "PRIORITIES",
    "SESSION_ID",
    "STATUSES",
    "STRATEGY_TOPOLOGY",
    "Accepted",
    "GetSwarm",
    "ListSwarms",
    "Listing",
    "RefreshSwarms",
    "ReplaceTable",
    "Session",
    "SessionUpdate",
    "SpawnRequest",
    "SpawnSwarm",
    "StandDown",
    "StopSwarm",
    "TableChange",
    "TakeCharge",
    "WatchTable",
    "normalise_priority",
]


MAX_TASK_CHARS = 10_000


PRIORITIES = ("low", "medium", "high")


STATUSES = ("spawning", "active", "paused", "stopping", "completing", "completed", "failed",
            "unknown")
# A swarm's id: a UUID4, which is also its folder's name and its record's.
SESSION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


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
    """What the API shows of a swarm: its folder's state (claude-flow's) merged with the
    daemon's record of it (how far a spawn or stop got, and why it failed)."""

    id: str
    status: str
    task: str = ""
    priority: str = "medium"
    topology: str = ""
    workers: tuple[Mapping[str, Any], ...] = ()
    created_at: str = ""
    updated_at: str = ""
    raw_status: str = ""
    error: str = ""
    stage: str = ""  # while spawning: queued, folder, init, task, spawn

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Session:
        """The inverse of :meth:`to_json` (a cluster's follower rebuilds the leader's table
        from it); ValueError for anything else."""
        try:
            return cls(str(data["id"]), str(data["status"]), str(data.get("task", "")),
                       str(data.get("priority", "medium")), str(data.get("topology", "")),
                       tuple(dict(w) for w in data.get("workers", ())),
                       str(data.get("createdAt", "")), str(data.get("updatedAt", "")), "",
                       str(data.get("error", "")), str(data.get("stage", "")))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a session: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id, "status": self.status, "task": self.task, "priority": self.priority,
            "topology": self.topology, "workers": [dict(w) for w in self.workers],
            "agentCount": len(self.workers), "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if self.error:
            out["error"] = self.error
        if self.stage:
            out["stage"] = self.stage
        return out


@dataclass(frozen=True, slots=True)
class SpawnSwarm:
    """Accept a spawn (answered at once with :class:`Accepted`); the CLI commands run on the
    actor's worker pool. The same ``idempotency_key`` answers with the first swarm."""

    request: SpawnRequest
    idempotency_key: str = ""


@dataclass(frozen=True, slots=True)
class Accepted:
    session: Session
    replayed: bool = False  # an earlier request with the same idempotency key made it


@dataclass(frozen=True, slots=True)
class ListSwarms:
    """The actor's table, as it is (it starts no process): answered with a :class:`Listing`."""


@dataclass(frozen=True, slots=True)
class Listing:
    """Every session by creation time, and each one's JSON, encoded once when it changed (so
    that a list of 1,000 costs a join, not 1,000 encodings)."""

    sessions: tuple[Session, ...]
    encoded: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class RefreshSwarms:
    """Re-read every swarm's state now; answered with a ``concurrent.futures.Future`` that is
    done once the result is in the table."""


@dataclass(frozen=True, slots=True)
class GetSwarm:
    session_id: str


@dataclass(frozen=True, slots=True)
class StopSwarm:
    """Accept a stop (answered at once with the session, ``stopping``). A swarm that never
    came to be (``failed``, no folder) is forgotten instead."""

    session_id: str


@dataclass(frozen=True, slots=True)
class TableChange:
    """One row of the table as the API shows it (``view``: the session's JSON, encoded), or
    its removal (``view`` None). A leader's hive-mind publishes one for every change to the
    watchers of :class:`WatchTable`; a follower's, on standby, applies them."""

    session_id: str
    view: bytes | None


@dataclass(frozen=True, slots=True)
class WatchTable:
    """Call ``callback(TableChange)`` from the actor's thread for every change of its table
    (it must not block)."""

    key: str
    callback: Callable[[TableChange], object]


@dataclass(frozen=True, slots=True)
class ReplaceTable:
    """On standby: the leader's whole table (each session's JSON, encoded), then the changes
    heard while it was fetched."""

    views: tuple[bytes, ...]
    since: tuple[TableChange, ...] = ()


# The cluster actor's kept fact (``ChildContext.kept_by``): the epoch this daemon's hive-mind
# runs the swarms for, 0 for none.
CHARGE = "charge"


@dataclass(frozen=True, slots=True)
class TakeCharge:
    """In a cluster, this daemon now leads: read the records (the cluster put the last
    leader's in ``records_dir``) and the backend, finish what was in flight, run the jobs.
    Taken only while the cluster actor keeps this daemon's charge (its kept ``charge``): a
    restarted hive-mind reads that fact itself, so no message can be lost."""


@dataclass(frozen=True, slots=True)
class StandDown:
    """In a cluster, another daemon leads: keep the table as a copy for the next incarnation,
    which the cluster starts (on standby: the charge is withdrawn) by restarting this one."""


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """Published to subscribers whenever a swarm's status (or stage) changes."""

    session: Session
    changes: tuple[str, ...] = field(default=())
