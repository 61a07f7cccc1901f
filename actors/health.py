"""The health actor: one snapshot of everything, refreshed on a tick.

It reads the tree's ``describe()``, asks every other running actor for its
:class:`ActorStatus`, folds in what the front end reports about the event loop and requests,
and derives ``system_status``: ``healthy``, ``degraded`` (something is down, restarting, stuck,
or a peer's breaker is open) or ``critical`` (the root failed, or every other actor is down).
Subscribers hear about a new snapshot whenever its status-bearing part changes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pykka
import structlog

from actors.messages import ActorStatus, StatusQuery
from actors.schema import Settings, seconds
from actors.subscribers import Subscribers
from actors.ticker import TickingActor
from supervisor import AskTimeout, ChildContext, SupervisionError, context_of

__all__ = [
    "LAG_DEGRADED_MS",
    "GetHealth",
    "HealthActor",
    "HealthSettings",
    "HealthSnapshot",
    "LoopReport",
]


log = structlog.get_logger("actors.health")

LAG_DEGRADED_MS = 250.0


@dataclass(frozen=True, slots=True)
class LoopReport:
    """What the event loop side knows: its lag and its request counters."""

    lag_ms: float
    total_requests: int = 0
    successful_requests: int = 0
    failed_requests: int = 0
    average_response_time_ms: float = 0.0
    websocket_clients: int = 0


@dataclass(frozen=True, slots=True)
class GetHealth:
    refresh: bool = False


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """``body`` is the JSON document of ``/api/health``; built once, never mutated.
    ``stale_after``: the monotonic time after which it must not be served without a refresh
    (the cluster leader's lease deadline: a snapshot saying "leader" past it would be a lie)."""

    system_status: str
    body: Mapping[str, Any]
    stale_after: float = math.inf


@dataclass(frozen=True, slots=True)
class _Collected:
    """A background collection's result (None, None when it failed)."""

    root: Mapping[str, Any] | None
    components: dict[str, dict[str, Any]] | None


@dataclass(frozen=True)
class HealthSettings(Settings):
    """``[actors.health]``."""

    interval_s: float = seconds(2.0, lo=0.05)  # how often the snapshot is refreshed
    status_timeout_s: float = seconds(1.0, lo=0.05)  # how long each actor has to answer
    stuck_after_s: float = seconds(120.0, lo=1.0)  # busy with one message longer: degraded


class HealthActor(TickingActor):
    supervision: ChildContext  # set by the supervisor before the actor starts

    def __init__(self, settings: HealthSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or HealthSettings()
        self._loop = LoopReport(0.0)
        self._snapshot: HealthSnapshot | None = None
        self._collecting = False
        self._subscribers: Subscribers[HealthSnapshot] = Subscribers("health", context_of(self))

    def on_start(self) -> None:
        self._collector = ThreadPoolExecutor(1, thread_name_prefix="health-collect")
        self.supervision.on_exit(lambda: self._collector.shutdown(wait=False, cancel_futures=True))
        self.start_ticking(self.settings.interval_s)

    def on_tick(self) -> None:
        # Statuses are collected on a thread of our own: an actor slow to answer (busy with a
        # big graph) holds up the next snapshot, never a reader of the current one.
        if not self._collecting:
            self._collecting = True
            self._collector.submit(self._collect_in_background)

    def _collect_in_background(self) -> None:
        collected: _Collected | None = None
        try:
            collected = _Collected(*self._collect())
        finally:
            with contextlib.suppress(pykka.ActorDeadError):
                self.actor_ref.tell(collected or _Collected(None, None))

    def on_message(self, message: Any) -> Any:
        if isinstance(message, _Collected):
            self._collecting = False
            if message.root is not None and message.components is not None:
                self._build(message.root, message.components)
            return None
        if isinstance(message, LoopReport):
            self._loop = message
            return None
        if isinstance(message, GetHealth):
            if (message.refresh or self._snapshot is None
                    or time.monotonic() >= self._snapshot.stale_after):
                self._refresh()
            return self._snapshot
        if self._subscribers.handle(message):
            return None
        if isinstance(message, StatusQuery):
            return ActorStatus("health", "healthy")
        return super().on_message(message)

    # -- the snapshot ----------------------------------------------------------------------

    def _refresh(self) -> None:
        self._build(*self._collect())

    def _collect(self) -> tuple[Mapping[str, Any], dict[str, dict[str, Any]]]:
        """The tree and each actor's status (blocking: thread-safe, run off the actor's thread)."""
        root = self.supervision.tree.describe()
        me = self.supervision.path
        components: dict[str, dict[str, Any]] = {}
        for child in root["children"]:
            components[child["name"]] = self._component(child, me)
        return root, components

    def _build(self, root: Mapping[str, Any], components: dict[str, dict[str, Any]]) -> None:
        status = _system_status(root, components, self._loop.lag_ms)
        previous = self._snapshot
        body = {
            "system_status": status,
            "docker_health": _peer(components.get("hive_mind"), "docker_health"),
            "mcp_health": _peer(components.get("mcp"), "mcp_health"),
            "active_sessions": list(
                (components.get("hive_mind") or {}).get("detail", {}).get("active_sessions", [])
            ),
            "container_health": dict(
                (components.get("hive_mind") or {}).get("detail", {}).get("container_health", {})
            ),
            "performance": {
                "total_requests": self._loop.total_requests,
                "successful_requests": self._loop.successful_requests,
                "failed_requests": self._loop.failed_requests,
                "average_response_time_ms": round(self._loop.average_response_time_ms, 3),
                "event_loop_lag_ms": round(self._loop.lag_ms, 3),
                "websocket_clients": self._loop.websocket_clients,
            },
            "cluster": _cluster(components.get("cluster")),
            "components": components,
            "actors": _actor_summary(root),
            "last_updated": dt.datetime.now(dt.UTC).isoformat(),
        }
        self._snapshot = HealthSnapshot(status, MappingProxyType(body), _stale_after(components))
        if previous is None or _signature(previous) != _signature(self._snapshot):
            if previous is not None and previous.system_status != status:
                log.info("health.status_changed", old=previous.system_status, new=status)
            self._subscribers.publish(self._snapshot)

    def _component(self, node: Mapping[str, Any], me: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"state": node["state"], "restarts": node["restarts"]}
        if node["state"] != "running":
            entry.update(health="down", reason=f"actor is {node['state']}")
            return entry
        if node["path"] == me or node["kind"] != "worker":
            entry.update(health="healthy", reason="")
            return entry
        try:
            reply = self.supervision.address(node["path"]).ask(
                StatusQuery(), timeout=self.settings.status_timeout_s)
        except AskTimeout as exc:
            # Slow to answer because it is working (a million-node graph loading) is not a
            # fault, and reporting it as one made the status flap; stuck that long is.
            busy = self.supervision.tree.describe(node["path"]).get("busy")
            if busy is not None and busy["for_s"] < self.settings.stuck_after_s:
                entry.update(health="busy", reason=f"handling {busy['message']} for {busy['for_s']:.1f} s",
                             busy=busy)
            elif busy is not None:
                entry.update(health="degraded", busy=busy,
                             reason=f"stuck on {busy['message']} for {busy['for_s']:.0f} s")
            else:
                entry.update(health="degraded", reason=f"no status: {exc}")
            return entry
        except SupervisionError as exc:
            entry.update(health="degraded", reason=f"no status: {exc}")
            return entry
        except Exception as exc:  # noqa: BLE001 - an actor's bug must not break health
            entry.update(health="degraded", reason=f"status failed: {type(exc).__name__}")
            return entry
        if isinstance(reply, ActorStatus):
            entry.update(health=reply.health, reason=reply.reason, detail=dict(reply.detail))
        else:
            entry.update(health="healthy", reason="")
        return entry


def _peer(component: Mapping[str, Any] | None, key: str) -> str:
    if component is None:
        return "unknown"
    return str(component.get("detail", {}).get(key, "unknown"))


# What each daemon is in the cluster (``actors.cluster``): without ``[cluster]`` it is one
# process, and says so.
CLUSTER_KEYS = ("role", "node", "epoch", "leader", "peers", "fault")


def _stale_after(components: dict[str, dict[str, Any]]) -> float:
    """The leader's lease deadline (``lease_until``, this process's monotonic clock), taken
    out of the cluster's detail; infinity when this daemon does not lead."""
    detail = (components.get("cluster") or {}).get("detail")
    if not isinstance(detail, dict):
        return math.inf
    until = detail.pop("lease_until", None)
    return float(until) if detail.get("role") == "leader" and until is not None else math.inf


def _cluster(component: Mapping[str, Any] | None) -> dict[str, Any]:
    if component is None:
        return {"role": "single"}
    detail = component.get("detail") or {}
    if "role" not in detail:  # the actor is down or has not answered
        return {"role": "unknown", "node": None, "epoch": 0, "leader": None, "peers": [],
                "fault": component.get("reason") or "no status"}
    return {key: detail.get(key) for key in CLUSTER_KEYS}


def _system_status(
    root: Mapping[str, Any], components: Mapping[str, Mapping[str, Any]], lag_ms: float
) -> str:
    if root["state"] == "failed":
        return "critical"
    others = [c for name, c in components.items() if name != "health"]
    if others and all(c.get("health") == "down" for c in others):
        return "critical"
    if any(c.get("health") in ("down", "degraded") for c in components.values()):
        return "degraded"
    if lag_ms > LAG_DEGRADED_MS:
        return "degraded"
    return "healthy"


def _actor_summary(root: Mapping[str, Any]) -> dict[str, Any]:
    """The original system's status shape, computed over the whole tree."""
    actors: list[dict[str, Any]] = []

    def walk(node: Mapping[str, Any]) -> None:
        actors.append({
            "name": node["name"], "path": node["path"], "kind": node["kind"],
            "state": node["state"], "is_running": node["state"] == "running",
            "restart_count": node["restarts"], "incarnation": node["incarnation"],
            "last_failure": node["last_failure"], "restart": node["restart"],
        })
        for child in node["children"]:
            walk(child)

    walk(root)
    return {
        "total_actors": len(actors),
        "running_actors": sum(a["is_running"] for a in actors),
        "failed_actors": sum(a["state"] == "failed" for a in actors),
        "actors": actors,
    }


def _signature(snapshot: HealthSnapshot) -> tuple[Any, ...]:
    body = snapshot.body
    return (
        snapshot.system_status,
        body["docker_health"],
        body["mcp_health"],
        tuple(sorted((k, str(v)) for k, v in body["cluster"].items())),
        tuple((n, c.get("health"), c.get("state")) for n, c in body["components"].items()),
    )
