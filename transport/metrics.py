"""Prometheus metrics, by the convention (docs/operations.md lists every name and its meaning):
counters end in ``_total`` and only go up, durations are ``_seconds``, sizes ``_bytes``, and a
label never carries a state that changes (one ``hive_actor_up`` series per actor, 1 or 0).

The registry is the app's own (several apps live in one test process). What the actors know
(restarts, breakers, swarms, MCP calls) is read when ``/metrics`` is scraped: from the tree, and
from the health actor's last snapshot, which holds every actor's status (one ask, never one
per actor on the scrape's path).
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from supervisor import SupervisionTree

__all__ = ["BREAKER_STATES", "Metrics"]

# hive_breaker_state's values
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class _TreeCollector(Collector):
    """The actor tree and the actors' own figures, at scrape time."""

    def __init__(self, tree: SupervisionTree, metrics: Metrics) -> None:
        self._tree = tree
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "hive_actor_restarts", "Restarts of each actor since the daemon started", labels=["path"])
        up = GaugeMetricFamily("hive_actor_up", "1 while the actor is running, else 0", labels=["path"])
        mailbox = GaugeMetricFamily(
            "hive_actor_mailbox_depth", "Messages waiting in each actor's inbox", labels=["path"])
        incarnation = GaugeMetricFamily(
            "hive_actor_incarnation", "Current incarnation of each actor (1 at its first start)",
            labels=["path"])

        def walk(node: Mapping[str, Any]) -> None:
            restarts.add_metric([node["path"]], node["restarts"])
            up.add_metric([node["path"]], 1 if node["state"] == "running" else 0)
            mailbox.add_metric([node["path"]], node["mailbox"])
            incarnation.add_metric([node["path"]], node["incarnation"])
            for child in node["children"]:
                walk(child)

        walk(self._tree.describe())
        yield from (restarts, up, mailbox, incarnation)
        yield from _component_metrics(self._metrics.components)


def _component_metrics(components: Mapping[str, Any]) -> Iterator[Metric]:
    """Breakers, swarms, MCP calls and the layout, from each actor's status ``detail``."""
    details = {name: entry.get("detail") or {} for name, entry in components.items()
               if isinstance(entry, Mapping)}
    breaker_state = GaugeMetricFamily(
        "hive_breaker_state", "Circuit breaker per peer: 0 closed, 1 half-open, 2 open",
        labels=["peer"])
    breaker_trips = CounterMetricFamily(
        "hive_breaker_trips", "Times each peer's breaker opened (since its actor started)",
        labels=["peer"])
    for peer, actor in (("docker", "hive_mind"), ("mcp", "mcp"), ("nats", "cluster")):
        breaker = details.get(actor, {}).get("breaker")
        if isinstance(breaker, Mapping) and breaker.get("state") in BREAKER_STATES:
            breaker_state.add_metric([peer], BREAKER_STATES[breaker["state"]])
            breaker_trips.add_metric([peer], breaker.get("trips", 0))
    yield from (breaker_state, breaker_trips)

    swarms = GaugeMetricFamily("hive_swarms", "Swarms the daemon keeps, by status", labels=["status"])
    for status, count in (details.get("hive_mind", {}).get("sessions_by_status") or {}).items():
        swarms.add_metric([str(status)], count)
    yield swarms

    mcp = details.get("mcp", {})
    calls = CounterMetricFamily(
        "hive_mcp_calls", "MCP tool calls through the pool, by outcome: ok, error (the tool or "
        "the protocol said no), failed (the peer: gone or silent); since the mcp actor started",
        labels=["outcome"])
    histogram = mcp.get("latency_histogram")
    if isinstance(histogram, Mapping):
        failed, errors = int(mcp.get("failures", 0)), int(mcp.get("errors", 0))
        calls.add_metric(["ok"], max(0, int(mcp.get("calls", 0)) - failed - errors))
        calls.add_metric(["error"], errors)
        calls.add_metric(["failed"], failed)
        yield calls
        yield HistogramMetricFamily(
            "hive_mcp_call_duration_seconds", "Round trip of the calls answered with a result "
            "(outcome ok)",
            buckets=[(str(le) if le != "+Inf" else "+Inf", count) for le, count in histogram["buckets"]],
            sum_value=histogram["sum_s"])
    else:
        yield calls

    cluster = details.get("cluster", {})
    leader = GaugeMetricFamily("hive_cluster_leader", "1 while this daemon leads the cluster, "
                                                      "0 while it follows ([cluster] only)")
    epoch = GaugeMetricFamily("hive_cluster_epoch", "The leader lease's epoch as this daemon "
                                                    "last read it ([cluster] only)")
    peers = GaugeMetricFamily("hive_cluster_peers", "Daemons heard from within a lease TTL, this "
                                                    "one included ([cluster] only)")
    if "role" in cluster:
        leader.add_metric([], 1.0 if cluster["role"] == "leader" else 0.0)
        epoch.add_metric([], float(cluster.get("epoch") or 0))
        peers.add_metric([], float(len(cluster.get("peers") or ())))
    yield from (leader, epoch, peers)

    layout = details.get("gpu_layout", {})
    step = GaugeMetricFamily("hive_layout_step_seconds", "Mean time of one layout step")
    nodes = GaugeMetricFamily("hive_layout_nodes", "Nodes in the layout")
    at_rest = GaugeMetricFamily("hive_layout_at_rest", "1 while the layout is at rest (no steps, "
                                                       "no frames), else 0")
    moving = GaugeMetricFamily("hive_layout_moving_nodes", "Nodes the layout is moving now")
    if layout:
        step.add_metric([], float(layout.get("step_ms", 0.0)) / 1e3)
        nodes.add_metric([], float(layout.get("nodes", 0)))
        at_rest.add_metric([], 1.0 if layout.get("at_rest") else 0.0)
        moving.add_metric([], float(layout.get("moving", 0)))
    yield from (step, nodes, at_rest, moving)


class _BuildInfo(Collector):
    def __init__(self, version: str) -> None:
        self._labels = {"version": version, "python": platform.python_version(),
                        "implementation": sys.implementation.name}

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("hive_build", "The daemon's version and its Python")
        info.add_metric([], self._labels)
        yield info


class Metrics:
    def __init__(self, tree: SupervisionTree, version: str = "unknown") -> None:
        self.version = version  # the daemon's, for whoever asks (MCP's serverInfo)
        self.registry = CollectorRegistry()
        r = self.registry
        self.components: Mapping[str, Any] = {}  # the health snapshot's, set before each scrape
        self.ws_clients = Gauge("hive_websocket_clients", "Open WebSocket clients", ["route"],
                                registry=r)
        self.ws_rejected = Counter("hive_websocket_rejected", "WebSockets refused or closed",
                                   ["route", "reason"], registry=r)
        self.frames_sent = Counter("hive_frames_sent", "Position frames sent to clients",
                                   registry=r)
        self.frame_bytes = Counter("hive_frames_sent_bytes", "Bytes of position frames sent",
                                   registry=r)
        self.frames_dropped = Counter(
            "hive_frames_dropped", "Position frames replaced before a slow client took them",
            registry=r)
        self.position_updates = Counter(
            "hive_position_updates", "Node positions received from clients (drags)", registry=r)
        self.http_refused = Counter(
            "hive_http_refused", "Requests refused by the Host, Origin, token or JSON rules",
            ["reason"], registry=r)
        self.connections_reset = Counter(
            "hive_connections_reset", "Connections reset on accept: past the open-file budget",
            registry=r)
        self.requests = Counter("hive_http_requests", "HTTP requests by method, route and status",
                                ["method", "route", "status"], registry=r)
        self.request_seconds = Histogram("hive_http_request_duration_seconds",
                                         "HTTP request latency by route", ["method", "route"],
                                         registry=r)
        self.loop_lag = Gauge("hive_event_loop_lag_seconds", "How late the event loop woke up "
                              "(1 s period)", registry=r)
        r.register(_TreeCollector(tree, self))
        r.register(_BuildInfo(version))
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.total = 0
        self.ok = 0
        self.failed = 0
        self._seconds = 0.0

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.request_seconds.labels(method=method, route=route).observe(seconds)
        self.total += 1
        self._seconds += seconds
        if status < 400:
            self.ok += 1
        else:
            self.failed += 1

    @property
    def average_ms(self) -> float:
        return self._seconds * 1000 / self.total if self.total else 0.0

    def frames(self, count: int, nbytes: int) -> None:
        self.frames_sent.inc(count)
        self.frame_bytes.inc(nbytes)
