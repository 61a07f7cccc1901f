"""What the rest of the daemon says to the cluster actor, and what it answers. Free of the NATS
client: the front end imports this whether or not a cluster is configured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ClusterState", "Flush", "Forward", "GetCluster", "ServingAt"]


@dataclass(frozen=True, slots=True)
class GetCluster:
    """Ask for the :class:`ClusterState` now."""


@dataclass(frozen=True, slots=True)
class ClusterState:
    node: str
    role: Literal["leader", "follower"]
    epoch: int
    leader: str | None
    peers: tuple[str, ...]
    fault: str | None  # why the cluster is degraded (None when it is not)
    until: float = 0.0  # a leader's lease deadline (monotonic): after it, not a leader
    table_copied: bool = False  # a follower holding a copy of this leader's swarm table

    def detail(self) -> dict[str, Any]:
        """The ``cluster`` object of ``/api/health``."""
        return {"role": self.role, "node": self.node, "epoch": self.epoch,
                "leader": self.leader, "peers": list(self.peers), "fault": self.fault}


@dataclass(frozen=True, slots=True)
class ServingAt:
    """The daemon's own HTTP address (after it bound its port): where a leader runs the
    requests followers forward to it."""

    url: str
    api_token: str = ""  # what the server asks of a change (forwarded requests carry it)


@dataclass(frozen=True, slots=True)
class Forward:
    """Send an encoded request (:func:`actors.cluster.forward.encode_request`) to the leader.
    The answer is a ``concurrent.futures.Future`` of the encoded response, resolved on the
    link's loop: the asker awaits it, the actor's thread never waits on the network."""

    request: bytes
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Flush:
    """Keep what just changed (a write the leader accepted) in the cluster's shared state
    now. The answer is a ``concurrent.futures.Future`` of True once kept (False when it could
    not be), or None when this daemon does not lead."""
