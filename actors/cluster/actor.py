"""The cluster actor: owns the NATS connection (``link``) as ``actors/mcp`` owns its pool, and
answers what this daemon is in the cluster: its role, the epoch, the leader and the peers.

The role is judged when it is asked, from the lease's own deadline, not only from the last
report: a link stalled in a call (or a process stopped and resumed) is a follower the moment
its lease runs out, whether or not a report has come since.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import pykka
import structlog

from actors.cluster.link import LinkReport, NatsLink
from actors.cluster.settings import ClusterSettings
from actors.messages import ActorStatus, StatusQuery
from supervisor import ChildContext

__all__ = ["ClusterActor", "ClusterState", "GetCluster"]


log = structlog.get_logger("actors.cluster")


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

    def detail(self) -> dict[str, Any]:
        """The ``cluster`` object of ``/api/health``."""
        return {"role": self.role, "node": self.node, "epoch": self.epoch,
                "leader": self.leader, "peers": list(self.peers), "fault": self.fault}


@dataclass(frozen=True, slots=True)
class _LinkFailed:
    error: BaseException


class ClusterActor(pykka.ThreadingActor):
    supervision: ChildContext

    def __init__(self, settings: ClusterSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or ClusterSettings()
        self._report: LinkReport | None = None
        self._role: str | None = None
        self._link: NatsLink | None = None

    def on_start(self) -> None:
        ref = self.actor_ref

        def tell(message: Any) -> None:
            with contextlib.suppress(pykka.ActorDeadError):  # stopping: nobody to tell
                ref.tell(message)

        self._link = NatsLink(self.settings, tell, lambda exc: tell(_LinkFailed(exc)))
        self.supervision.on_exit(self._link.stop)  # also after a kill (no on_stop then)
        self._link.start()
        log.info("cluster.started", node=self.settings.name, url=self.settings.redacted_url,
                 lease_ttl_s=self.settings.lease_ttl_s)

    def on_stop(self) -> None:
        if self._link is not None:
            self._link.stop()

    def on_failure(self, *_exc: Any) -> None:
        self.on_stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, LinkReport):
            self._report = message
            self._log_changes()
            return None
        if isinstance(message, GetCluster):
            return self.state()
        if isinstance(message, StatusQuery):
            state = self.state()
            # lease_until: the health actor serves no snapshot saying "leader" past it
            detail = MappingProxyType({**state.detail(), "lease_until": state.until,
                                       "breaker": dict(self._report.breaker if self._report else {})})
            if state.fault:
                return ActorStatus("cluster", "degraded", state.fault, detail)
            return ActorStatus("cluster", "healthy", "", detail)
        if isinstance(message, _LinkFailed):
            raise RuntimeError(f"the NATS link failed: {message.error!r}") from message.error
        return None

    def state(self) -> ClusterState:
        node = self.settings.name
        report = self._report
        if report is None:
            return ClusterState(node, "follower", 0, None, (), "not connected to NATS yet")
        view, now = report.view, time.monotonic()
        fault = report.fault
        silent_s = now - report.at
        if fault is None and silent_s > 2 * self.settings.lease_ttl_s:
            # a fixed text: a changing one would push a new health snapshot every tick
            fault = f"no round with NATS for over {2 * self.settings.lease_ttl_s:g} s"
        if view.role == "leader" and now < view.until:
            return ClusterState(node, "leader", view.epoch, node, report.peers, fault, view.until)
        leader = None if view.leader == node else view.leader
        return ClusterState(node, "follower", view.epoch, leader, report.peers, fault)

    def _log_changes(self) -> None:
        state = self.state()
        if state.role != self._role:
            log.info("cluster.role", node=state.node, role=state.role, epoch=state.epoch,
                     leader=state.leader)
            self._role = state.role
