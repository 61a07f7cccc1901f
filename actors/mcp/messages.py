"""What the MCP actor understands (import these, not the actor module). Each is immutable."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["AnnounceAgents", "CallTool", "GetAgents", "GetServerInfo", "RelayRequest", "RelayTicket",
           "RetireAgents"]


@dataclass(frozen=True, slots=True)
class CallTool:
    name: str
    arguments: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    key: int | None = None  # sticky routing: the same key reaches the same server


@dataclass(frozen=True, slots=True)
class RelayRequest:
    method: str
    params: Any = None
    key: int | None = None


@dataclass(frozen=True, slots=True)
class RelayTicket:
    """A relayed request in flight: its raw response, and how to give up on it."""

    future: Future[dict[str, Any]]
    cancel: Any  # Callable[[str], None]


@dataclass(frozen=True, slots=True)
class GetAgents:
    pass


@dataclass(frozen=True, slots=True)
class GetServerInfo:
    pass


@dataclass(frozen=True, slots=True)
class AnnounceAgents:
    """A new swarm's workers: each registered on the data plane (``agent_spawn``, named
    ``<worker id>@<swarm id>``, on the pooled server ``key`` routes to) and shown at once, as a
    member of ``swarm_id``, without waiting for the next poll."""

    swarm_id: str
    agents: tuple[tuple[str, str], ...]  # (worker id, agent type)
    key: int | None = None


@dataclass(frozen=True, slots=True)
class RetireAgents:
    """A swarm that stopped or was removed: its agents are terminated on the data plane
    (``agent_terminate``, on the pooled server ``key`` routes to) and shown no more. Without
    this, every swarm ever spawned stayed in claude-flow's agent list, and so in every poll and
    in the layout: a daemon that ran for months grew with its history. (claude-flow keeps a
    terminated agent's entry in its store; its ``agent_list`` no longer returns it.)"""

    swarm_id: str
    key: int | None = None
