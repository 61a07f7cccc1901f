"""Prometheus metrics, in a registry of the app's own (several apps can live in one process,
as they do in the tests). Actor figures are read from the tree when ``/metrics`` is scraped."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from supervisor import SupervisionTree

__all__ = ["Metrics"]


class _TreeCollector(Collector):
    def __init__(self, tree: SupervisionTree) -> None:
        self._tree = tree

    def collect(self) -> Iterator[GaugeMetricFamily]:
        restarts = GaugeMetricFamily(
            "hive_actor_restarts", "Restarts of each actor since start", labels=["path"])
        mailbox = GaugeMetricFamily(
            "hive_actor_mailbox_depth", "Messages waiting in each actor's inbox", labels=["path"])
        running = GaugeMetricFamily(
            "hive_actor_running", "1 when the actor is running", labels=["path", "state"])
        incarnation = GaugeMetricFamily(
            "hive_actor_incarnation", "Current incarnation of each actor", labels=["path"])

        def walk(node: Mapping[str, Any]) -> None:
            restarts.add_metric([node["path"]], node["restarts"])
            mailbox.add_metric([node["path"]], node["mailbox"])
            running.add_metric([node["path"], node["state"]], node["state"] == "running")
            incarnation.add_metric([node["path"]], node["incarnation"])
            for child in node["children"]:
                walk(child)

        walk(self._tree.describe())
        yield from (restarts, mailbox, running, incarnation)


class Metrics:
    def __init__(self, tree: SupervisionTree) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ws_clients = Gauge("hive_websocket_clients", "Open WebSocket clients", ["route"],
                                registry=r)
        self.ws_rejected = Counter("hive_websocket_rejected", "WebSockets refused or closed",
                                   ["route", "reason"], registry=r)
        self.frames_sent = Counter("hive_frames_sent", "Position frames sent to clients",
                                   registry=r)
        self.frame_bytes = Counter("hive_frame_bytes_sent", "Bytes of position frames sent",
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
        self.requests = Counter("hive_http_requests", "HTTP requests by status class",
                                ["status"], registry=r)
        self.request_seconds = Histogram("hive_http_request_seconds", "HTTP request latency",
                                         registry=r)
        self.step_ms = Gauge("hive_layout_step_ms", "Mean layout step time (ms)", registry=r)
        self.layout_nodes = Gauge("hive_layout_nodes", "Nodes in the layout", registry=r)
        self.loop_lag_ms = Gauge("hive_event_loop_lag_ms", "Event loop lag (ms)", registry=r)
        r.register(_TreeCollector(tree))
        self.total = 0
        self.ok = 0
        self.failed = 0
        self._seconds = 0.0

    def observe_request(self, status: int, seconds: float) -> None:
        self.requests.labels(status=f"{status // 100}xx").inc()
        self.request_seconds.observe(seconds)
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
