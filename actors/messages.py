"""Messages every actor understands, and the layout's frames. All immutable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from actors.graph import Graph, GraphEdge, GraphNode, NodeKind
from actors.layout_store import SavedLayout
from gpu.params import SimParams

__all__ = [
    "ActorStatus",
    "GetGraph",
    "GetSnapshot",
    "Health",
    "PinNodes",
    "PositionFrame",
    "ResumeLayout",
    "SetGraph",
    "SetParams",
    "StatusQuery",
    "Step",
    "Subscribe",
    "Tick",
    "UnpinNodes",
    "Unsubscribe",
    "UpdateGraph",
]


Health = Literal["healthy", "degraded", "down"]


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """Ask any actor how it is; it answers with an :class:`ActorStatus`."""


@dataclass(frozen=True, slots=True)
class ActorStatus:
    name: str
    health: Health
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Tick:
    """Sent by a :class:`actors.ticker.Ticker`; ``at`` is the monotonic time it was sent."""

    at: float


# -- layout ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetGraph:
    """Replace one kind's graph; positions of nodes the layout already knows are kept."""

    graph: Graph


@dataclass(frozen=True, slots=True)
class UpdateGraph:
    """Add and remove nodes and edges of one kind's graph. Removing a node removes its edges;
    the positions of every node that stays are kept."""

    kind: NodeKind
    add_nodes: tuple[GraphNode, ...] = ()
    remove_nodes: tuple[int, ...] = ()
    add_edges: tuple[GraphEdge, ...] = ()
    remove_edges: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ResumeLayout:
    """Take up a layout another daemon kept (a cluster's last leader): its knowledge graph,
    positions and pins, as a restart takes them from disk."""

    saved: SavedLayout


@dataclass(frozen=True, slots=True)
class GetGraph:
    kind: NodeKind | None = None  # None: every kind


@dataclass(frozen=True, slots=True)
class PinNodes:
    """Fix nodes where a user dropped them (wire ids, with kind flags)."""

    wire_ids: tuple[int, ...]
    positions: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True, slots=True)
class UnpinNodes:
    wire_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SetParams:
    changes: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Step:
    """Run ``n`` steps now (tests, benchmarks); answers with the kinetic energy."""

    n: int = 1


@dataclass(frozen=True, slots=True)
class GetSnapshot:
    """Answer with a full :class:`PositionFrame` of every node."""


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Call ``callback(frame)`` from the layout's thread for every published frame.

    The callback must not block: hand the frame over (``call_soon_threadsafe``) and return.
    """

    key: str
    callback: Callable[[Any], object]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    key: str


DEFAULT_BOUNDS = SimParams().bounds


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, slots=True, eq=False)
class PositionFrame:
    """Every node's position and velocity after one tick, plus which moved past the deadband
    since the previous frame (``moved``). Arrays are read-only."""

    seq: int
    wire_ids: np.ndarray  # uint32 (n,)
    positions: np.ndarray  # float32 (n, 3)
    velocities: np.ndarray  # float32 (n, 3)
    moved: np.ndarray  # bool (n,)
    full: bool  # the previous frame's ids differ: deltas against it mean nothing
    bounds: float = DEFAULT_BOUNDS  # the world is [-bounds, bounds] per axis (v3 quantizes in it)

    @classmethod
    def make(
        cls, seq: int, wire_ids: np.ndarray, positions: np.ndarray, velocities: np.ndarray,
        moved: np.ndarray, full: bool, bounds: float = DEFAULT_BOUNDS,
    ) -> PositionFrame:
        return cls(seq, _frozen(wire_ids), _frozen(positions), _frozen(velocities),
                   _frozen(moved), full, bounds)

    def __len__(self) -> int:
        return int(self.wire_ids.shape[0])
